"""Prompts: a task (plus what its dependencies produced) turned into messages for a model.

One place decides what an agent sees: its system prompt; the task's title, description,
deliverables and success criteria; and the outputs of the tasks it depends on, as context. The
hybrid interface's review and revision turns, and the hand-off text for a person, live here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..llm_abstractions.messages import Message
from .agent_registry import AgentConfig
from .task import AgentTask

__all__ = [
    "DEFAULT_MAX_CONTEXT_CHARS",
    "DEFAULT_REVIEWER_PROMPT",
    "DEFAULT_SYSTEM_PROMPT",
    "UpstreamOutput",
    "build_messages",
    "handoff_prompt",
    "review_messages",
    "revision_messages",
    "task_prompt",
    "upstream_from_mapping",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are a capable software engineer working on one task of a larger project. "
    "Do the task described by the user. Reply with the result itself (code, text or a plan), "
    "complete and ready to use, and meet every success criterion."
)

DEFAULT_REVIEWER_PROMPT = (
    "You are a demanding reviewer. Critique the draft below against the task and its success "
    "criteria: list concrete problems and what to change. Do not rewrite the draft yourself."
)

DEFAULT_MAX_CONTEXT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class UpstreamOutput:
    """What a completed dependency produced, passed downstream as context."""

    task_id: str
    title: str
    output: str
    value: Any = None
    """A typed dependency's validated output (JSON data): given as a JSON block."""

    def context(self, limit: int) -> str:
        """The output as the context shows it: a typed one as a ```json block (cut at
        ``limit`` characters, then no longer JSON: said so), else the text cut at ``limit``."""
        if self.value is None:
            return _clip(self.output, limit)
        text = json.dumps(self.value, ensure_ascii=False, indent=2)
        if len(text) > limit:
            return "(JSON, cut)\n" + _clip(text, limit)
        return f"```json\n{text}\n```"


def upstream_from_mapping(outputs: Mapping[str, str]) -> list[UpstreamOutput]:
    """``{task_id: output}`` as :class:`UpstreamOutput` items (the id doubles as the title)."""
    return [UpstreamOutput(tid, tid, text) for tid, text in outputs.items()]


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut ...]"


def task_prompt(
    task: AgentTask,
    upstream: Sequence[UpstreamOutput] = (),
    *,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
) -> str:
    """The user turn for ``task``: what to do, what counts as done, and what came before.

    Each dependency's output is cut to ``max_context_chars`` characters.
    """
    parts = [f"# Task {task.task_id}: {task.title}"]
    if task.description:
        parts.append(task.description)
    if task.deliverables:
        parts.append("## Deliverables\n" + _bullets(task.deliverables))
    if task.success_criteria:
        parts.append("## Success criteria\n" + _bullets(task.success_criteria))
    if upstream:
        context = [f"### {u.task_id}: {u.title}\n{u.context(max_context_chars)}" for u in upstream]
        parts.append(
            "## Context: output of the tasks this one depends on\n\n" + "\n\n".join(context)
        )
    return "\n\n".join(parts)


def build_messages(
    task: AgentTask,
    agent: AgentConfig | None = None,
    upstream: Sequence[UpstreamOutput] = (),
    *,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
) -> list[Message]:
    """System prompt (the agent's, else the default) and the task's user turn."""
    system = (agent.system_prompt if agent else None) or DEFAULT_SYSTEM_PROMPT
    return [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": task_prompt(task, upstream, max_context_chars=max_context_chars),
        },
    ]


def review_messages(
    task: AgentTask,
    draft: str,
    reviewer: AgentConfig | None = None,
    upstream: Sequence[UpstreamOutput] = (),
    *,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
) -> list[Message]:
    """The reviewer's turn of a hybrid agent: the task and the draft to critique."""
    system = (reviewer.system_prompt if reviewer else None) or DEFAULT_REVIEWER_PROMPT
    body = task_prompt(task, upstream, max_context_chars=max_context_chars)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{body}\n\n## Draft to review\n\n{draft}"},
    ]


def revision_messages(messages: Sequence[Message], draft: str, review: str) -> list[Message]:
    """The agent's last turn of a hybrid run: its draft, the critique, and a request to revise."""
    return [
        *messages,
        {"role": "assistant", "content": draft},
        {
            "role": "user",
            "content": (
                "A reviewer critiqued your answer:\n\n"
                f"{review}\n\n"
                "Revise your answer to address the critique. Reply with the complete revised "
                "result only."
            ),
        },
    ]


def handoff_prompt(
    task: AgentTask,
    agent: AgentConfig | None = None,
    upstream: Sequence[UpstreamOutput] = (),
    *,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
) -> str:
    """What a person is handed for an interactive task: the prompt to work from, and how to
    report back."""
    lines = []
    if agent and agent.system_prompt:
        lines.append(agent.system_prompt)
    lines.append(task_prompt(task, upstream, max_context_chars=max_context_chars))
    lines.append(f"When it is done, mark it complete: coditect task complete {task.task_id}")
    return "\n\n".join(lines)

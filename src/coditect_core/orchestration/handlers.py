"""How a task runs on each agent interface: :class:`Execution`, and a function per interface.

An ``api`` agent is one call of its request pipeline (:meth:`Execution.ask`): that is
:meth:`TaskExecutor._execute_api`, the plan's step 4.3, in :mod:`.executor`. ``cli`` and
``script`` agents are the same call over a ``CommandLlm`` or a ``ScriptLlm``; ``interactive``
hands the task to a person; ``hybrid`` drafts, reviews and revises. A handler fills the
execution's :class:`ExecutionResult` or raises; the executor turns errors into FAILED results
and decides on fallbacks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AgentError
from ..llm_abstractions.base_llm import LlmResponse
from ..llm_abstractions.messages import Message
from .agent_registry import AgentConfig, AgentInterface
from .attempts import AttemptedLlm, Attempts
from .execution_result import ExecutionResult, ExecutionStatus
from .prompts import (
    UpstreamOutput,
    build_messages,
    handoff_prompt,
    review_messages,
    revision_messages,
)
from .script_protocol import script_payload
from .task import AgentTask

if TYPE_CHECKING:
    from .executor import TaskExecutor

__all__ = ["HANDLERS", "Execution", "Handler"]

logger = logging.getLogger(__name__)


@dataclass
class Execution:
    """One execution of a task: what it works from, and where its outcome goes."""

    executor: TaskExecutor
    task: AgentTask
    upstream: Sequence[UpstreamOutput]
    result: ExecutionResult
    attempts: Attempts

    def messages(self, agent: AgentConfig) -> list[Message]:
        """What ``agent`` is asked: its system prompt, the task, the upstream outputs."""
        return build_messages(
            self.task, agent, self.upstream, max_context_chars=self.executor.max_context_chars
        )

    def llm(self, agent: AgentConfig) -> AttemptedLlm:
        """``agent``'s request pipeline for this execution: each call retried by its policy,
        each request an attempt's."""
        return AttemptedLlm(
            self.executor.journaled(agent, self.task),
            self.attempts,
            agent,
            self.executor.retry_policy(agent),
        )

    async def ask(self, agent: AgentConfig, messages: list[Message], **options: Any) -> LlmResponse:
        """One call of ``agent``'s request pipeline, retried by its policy, as attempts."""
        return await self.llm(agent).generate_async(messages, **options)

    async def ask_typed(self, agent: AgentConfig, messages: list[Message]) -> LlmResponse:
        """:meth:`ask` with the task's typed output (``output_schema``), if it has one: its
        answer then carries the validated ``value``."""
        return await self.ask(agent, messages, **self.task.typed_output())

    def answered(self, response: LlmResponse) -> None:
        """The task is done with ``response`` (a typed one: its value, as JSON text too)."""
        result = self.result
        result.status = ExecutionStatus.SUCCESS
        result.output = response.text
        if response.output_mode is not None:
            value = response.value
            if hasattr(value, "model_dump"):
                value = value.model_dump(mode="json")
            result.value = value
            result.output = json.dumps(value, ensure_ascii=False, indent=2)
            result.metadata["output_mode"] = response.output_mode
            result.metadata["output_tries"] = response.output_tries
        result.model = response.model
        result.finish_reason = response.finish_reason


Handler = Callable[[Execution, AgentConfig], Awaitable[None]]


async def run_cli(execution: Execution, agent: AgentConfig) -> None:
    """An external command-line agent: the prompt on its stdin, its stdout back."""
    execution.answered(await execution.ask_typed(agent, execution.messages(agent)))
    if agent.command:
        execution.result.metadata["command"] = agent.command[0]


async def run_script(execution: Execution, agent: AgentConfig) -> None:
    """The legacy ``execute_*.py`` protocol: the task as JSON on stdin, its result on stdout."""
    messages = execution.messages(agent)
    payload = script_payload(execution.task, agent, messages, execution.upstream)
    stdin = json.dumps(payload, ensure_ascii=False)
    typed = execution.task.typed_output()  # its stdout's output validated (prompted mode)
    execution.answered(await execution.ask(agent, messages, payload=stdin, **typed))


async def run_interactive(execution: Execution, agent: AgentConfig) -> None:
    """No model call: the task is handed to a person, with the prompt to work from."""
    prompt = handoff_prompt(
        execution.task,
        agent,
        execution.upstream,
        max_context_chars=execution.executor.max_context_chars,
    )
    execution.result.status = ExecutionStatus.AWAITING_HUMAN
    execution.result.metadata["handoff_prompt"] = prompt
    logger.info("task %s handed to a person (agent %s)", execution.task.task_id, agent.name)


async def run_hybrid(execution: Execution, agent: AgentConfig) -> None:
    """The agent drafts, its reviewer critiques, the agent revises."""
    if not agent.reviewer:
        raise AgentError(f"agent {agent.name!r}: hybrid needs a reviewer")
    reviewer = execution.executor.registry.get(agent.reviewer)
    if not reviewer.enabled:
        raise AgentError(f"reviewer agent {reviewer.name!r} is disabled")
    if reviewer.interface not in (AgentInterface.API, AgentInterface.CLI):
        raise AgentError(
            f"reviewer agent {reviewer.name!r} must use the api or cli interface, "
            f"not {reviewer.interface.value}"
        )
    messages = execution.messages(agent)
    draft = await execution.ask(agent, messages)
    review = await execution.ask(
        reviewer,
        review_messages(
            execution.task,
            draft.text,
            reviewer,
            execution.upstream,
            max_context_chars=execution.executor.max_context_chars,
        ),
    )
    final = await execution.ask_typed(agent, revision_messages(messages, draft.text, review.text))
    execution.answered(final)
    execution.result.metadata.update(
        {
            "draft": draft.text,
            "review": review.text,
            "reviewer": reviewer.name,
            "reviewer_model": review.model,
            "reviewer_usage": review.usage.to_dict(),
        }
    )


HANDLERS: dict[AgentInterface, Handler] = {
    AgentInterface.CLI: run_cli,
    AgentInterface.SCRIPT: run_script,
    AgentInterface.INTERACTIVE: run_interactive,
    AgentInterface.HYBRID: run_hybrid,
}
"""The handler of each interface but ``api`` (the executor's own ``_execute_api``)."""

"""An ``api`` agent with ``tools:`` runs the agent loop (:mod:`coditect_core.tools.loop`) for its
task: :func:`run_tool_loop`, called by :meth:`TaskExecutor._execute_api`.

* The agent's ``tools:`` entries become toolsets (:func:`~coditect_core.tools.toolset.
  resolve_toolsets`) confined to the executor's ``workspace``, opened by this task and closed
  when it ends, however it ends.
* Every model turn goes through the agent's request pipeline for this execution
  (:meth:`~.handlers.Execution.llm`): priced, rate-limited, journaled, retried by its policy,
  counted in the task's attempts.
* A provider that cannot call tools is refused before any call (a configuration error: the
  agent's fallbacks are tried, as for an agent that cannot be used).
* The budget (:class:`~.spend.BudgetGuard`): before each model turn, the next call is estimated
  (the conversation's tokens so far plus the agent's output bound, priced as the forecast prices
  a call, :mod:`.estimate`); if it would pass ``max_cost_usd`` or ``max_tokens`` with what the
  run and this task spent, the loop stops before it, the task fails with a budget message and
  the run stops (``stop_reason == "budget"``).
* The result's ``metadata["agent_loop"]``: the turns, the tool calls made, and each call (name,
  arguments, result excerpt, error, duration).
"""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AgentLoopError, LlmConfigurationError
from ..llm_abstractions.base_llm import LlmResponse
from ..llm_abstractions.messages import Message, tool_message
from ..llm_abstractions.tool_types import ToolCall
from ..tools.base import ToolResult, truncate_text
from ..tools.loop import (
    CANCELLED,
    AgentLoop,
    LoopHooks,
    LoopLimits,
    LoopResume,
    ToolBox,
    ToolCallRecord,
)
from ..tools.toolset import ToolContext, resolve_toolsets
from .agent_registry import AgentConfig
from .estimate import ASSUMED_OUTPUT, CHARS_PER_TOKEN, call_cost, call_model, estimate_tokens

if TYPE_CHECKING:
    from .handlers import Execution

__all__ = [
    "EXCERPT_CHARS",
    "RecordedLoop",
    "RecordedTurn",
    "loop_limits",
    "record_of",
    "run_tool_loop",
]

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 500
"""What a recorded tool result keeps of its text."""


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """A model turn of a loop as recorded: its text, the calls it asked for, and the results
    recorded for them (by call id)."""

    text: str
    tool_calls: list[ToolCall]
    results: dict[str, ToolResult] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedLoop:
    """A loop a killed run left unfinished: its recorded turns, first to last."""

    turns: list[RecordedTurn]
    last_attempt: int | None = None
    """The store's id of the last turn's attempt (its calls run now are recorded under it)."""

    def resume(self, start: list[Message]) -> LoopResume:
        """Where the loop goes on from, after ``start`` (the task's messages, built again):
        each turn and its recorded results; the last turn's calls without one run again."""
        messages = list(start)
        made = 0
        for i, turn in enumerate(self.turns):
            messages.append(
                {"role": "assistant", "content": turn.text, "tool_calls": turn.tool_calls}
            )
            last = i == len(self.turns) - 1
            for call in turn.tool_calls:
                result = turn.results.get(call.id)
                if result is None and not last:
                    result = ToolResult.error(CANCELLED)  # (not recorded: never sent on)
                if result is not None:
                    made += 1
                    if not last:
                        messages.append(
                            tool_message(call, result.content, is_error=result.is_error)
                        )
        return LoopResume(messages, self.turns[-1].results, turns=len(self.turns), tool_calls=made)


def loop_limits(agent: AgentConfig) -> LoopLimits:
    """``agent``'s bounds of the loop (``max_turns``, ``max_tool_calls``, ``tool_timeout``,
    ``max_parallel_tools``)."""
    return LoopLimits(
        max_turns=agent.max_turns,
        max_tool_calls=agent.max_tool_calls,
        tool_timeout=agent.tool_timeout,
        max_parallel_tools=agent.max_parallel_tools,
    )


def record_of(record: ToolCallRecord) -> dict[str, Any]:
    """A tool call as the result's metadata keeps it (its result shortened)."""
    excerpt, _ = truncate_text(record.result.content, EXCERPT_CHARS)
    return {
        "turn": record.turn,
        "id": record.call.id,
        "name": record.call.name,
        "arguments": record.call.arguments_json(),
        "result": excerpt,
        "is_error": record.result.is_error,
        "duration_s": round(record.duration_s, 6),
        "toolset": record.toolset,
    }


async def run_tool_loop(execution: Execution, agent: AgentConfig) -> None:
    """Run ``execution``'s task as ``agent``'s loop; its final answer is the task's output."""
    executor = execution.executor
    cls = executor.llm_class(agent)
    if not cls.supports_tools:
        raise LlmConfigurationError(
            f"agent {agent.name!r} has tools, but its provider {cls.provider!r} cannot call "
            "tools: remove its tools, or use a provider that supports them",
            provider=cls.provider,
        )
    workspace = executor.workspace if executor.workspace is not None else Path.cwd()
    context = ToolContext(
        workspace=workspace,
        import_root=workspace,
        allow_commands=agent.allow_commands,
        require_sandbox=agent.require_sandbox,
        mcp_servers=executor.mcp_servers.get(agent.name, {}),
    )
    recorded = executor.loop_resumes.pop(execution.task.task_id, None)
    state: dict[str, Any] = {"turns": 0, "tool_calls": 0, "calls": []}
    execution.result.metadata["agent_loop"] = state

    async def after_turn(turn: int, response: LlmResponse, messages: list[Message]) -> None:
        state["turns"] = turn
        if response.tool_calls:  # a turn of its own in the record; the next one begins
            await execution.attempts.turn_finished(agent, response, turn)

    async def after_tool(record: ToolCallRecord) -> None:
        row = record_of(record)
        if recorded is not None and record.turn == len(recorded.turns):
            row["attempt_id"] = recorded.last_attempt  # a call of the recorded last turn
        state["calls"].append(row)
        if record.toolset is not None:
            state["tool_calls"] += 1
        await execution.attempts.tool_called(record, row)

    async with AsyncExitStack() as stack:
        toolsets = resolve_toolsets(agent.tools, context)
        for toolset in toolsets:
            await stack.enter_async_context(toolset)
        toolbox = ToolBox(toolsets)
        schemas = sum(len(json.dumps(tool.to_dict())) for tool in toolbox.tools())
        hooks = LoopHooks(
            before_model=_budget_check(execution, agent, schemas),
            after_turn=after_turn,
            after_tool=after_tool,
        )
        loop = AgentLoop(execution.llm(agent), toolbox, limits=loop_limits(agent), hooks=hooks)
        if recorded is not None and recorded.turns:
            resume = recorded.resume(execution.messages(agent))
            state["resumed_turns"] = resume.turns
            logger.info(
                "task %s: the agent loop goes on from its %d recorded turn(s)",
                execution.task.task_id,
                resume.turns,
            )
            result = await loop.run(resume=resume)
        else:
            result = await loop.run(execution.messages(agent))
    execution.answered(result.response)


def _budget_check(execution: Execution, agent: AgentConfig, schema_chars: int) -> Any:
    """The loop's ``before_model`` hook: stop before a turn that would pass the run's budget
    (``schema_chars``: the tools' declarations, sent with every turn)."""
    executor = execution.executor
    guard = executor.budget_guard
    if guard is None:
        return None
    model = call_model(executor, agent)
    bound = model[2] if model[2] is not None else ASSUMED_OUTPUT

    def check(messages: list[Message], turn: int) -> None:
        prompt = estimate_tokens(messages) + -(-schema_chars // CHARS_PER_TOKEN)
        cost = call_cost(executor, agent, prompt, bound, model)
        attempts = execution.attempts
        own_tokens = attempts.usage.total_tokens if attempts.usage is not None else 0
        passed = guard.would_pass(
            prompt + bound, cost, own_tokens=own_tokens, own_cost=attempts.cost
        )
        if passed is None:
            return
        guard.stopped = passed
        limit = getattr(guard.budget, passed)
        estimate = f"~{prompt + bound} tokens" + (f", ~${cost:.4f}" if cost is not None else "")
        raise AgentLoopError(
            f"budget: the agent loop stopped before model turn {turn}: the next call "
            f"({estimate}) would pass the run's {passed} ({json.dumps(limit)})",
            limit="budget",
        )

    return check

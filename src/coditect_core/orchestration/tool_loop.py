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
* Approvals: a call of a tool the agent lists under ``approve:`` is not run until a person
  decided (``coditect task approve|reject``). Without a decision the task hands off to a person
  (``awaiting_human``, ``metadata["pending_approval"]``) and the call is recorded as a marker
  row (call id + :data:`APPROVAL_SUFFIX`, toolset :data:`APPROVAL_TOOLSET`) under its turn; the
  next run resumes the loop from its recorded turns: an approved call runs, a rejected one was
  answered with the person's note as an error result when it was rejected.
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
from .execution_result import ExecutionStatus

if TYPE_CHECKING:
    from .handlers import Execution

__all__ = [
    "APPROVAL_SUFFIX",
    "APPROVAL_TOOLSET",
    "APPROVED",
    "EXCERPT_CHARS",
    "WAITING_APPROVAL",
    "RecordedLoop",
    "RecordedTurn",
    "loop_limits",
    "record_of",
    "run_tool_loop",
]

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 500
"""What a recorded tool result keeps of its text."""

APPROVAL_SUFFIX = "#approval"
"""A call's id with this suffix names its approval's row among the recorded tool calls."""
APPROVAL_TOOLSET = "approval"
WAITING_APPROVAL = "waiting for a person's approval (coditect task approve|reject)"
APPROVED = "approved by a person"


class _ApprovalNeeded(Exception):
    """A call waits for a person's decision: the loop stops, the task hands off."""

    def __init__(self, call: ToolCall) -> None:
        super().__init__(f"tool call {call.name} waits for approval")
        self.call = call


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """A model turn of a loop as recorded: its text, the calls it asked for, and the results
    recorded for them (by call id)."""

    text: str
    tool_calls: list[ToolCall]
    results: dict[str, ToolResult] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)
    """A person's decision on a call (by call id): :data:`APPROVED`, or still waiting."""


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


async def run_tool_loop(
    execution: Execution,
    agent: AgentConfig,
    *,
    workspace: Path | None = None,
    on_answer: Any = None,
) -> None:
    """Run ``execution``'s task as ``agent``'s loop; its final answer is the task's output.
    ``workspace`` overrides the executor's (a writing task's worktree); ``on_answer`` is the
    loop's hook when the model answers without a call (a writing task's checks)."""
    executor = execution.executor
    cls = executor.llm_class(agent)
    if not cls.supports_tools:
        raise LlmConfigurationError(
            f"agent {agent.name!r} has tools, but its provider {cls.provider!r} cannot call "
            "tools: remove its tools, or use a provider that supports them",
            provider=cls.provider,
        )
    if workspace is None:
        workspace = executor.workspace if executor.workspace is not None else Path.cwd()
    context = ToolContext(
        workspace=workspace,
        import_root=workspace,
        allow_commands=agent.allow_commands,
        require_sandbox=agent.require_sandbox,
        approve=tuple(agent.approve),
        mcp_servers=executor.mcp_servers.get(agent.name, {}),
    )
    recorded = executor.loop_resumes.pop(execution.task.task_id, None)
    approved = {
        call_id
        for turn in (recorded.turns if recorded is not None else ())
        for call_id, decision in turn.approvals.items()
        if decision == APPROVED
    }
    approve = frozenset(agent.approve)
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

    async def before_tool(turn: int, call: ToolCall) -> None:
        if call.name not in approve or call.id in approved:
            return
        marker = ToolCallRecord(
            turn,
            ToolCall(call.id + APPROVAL_SUFFIX, call.name, call.arguments),
            ToolResult.error(WAITING_APPROVAL),
            0.0,
            APPROVAL_TOOLSET,
        )
        row = record_of(marker)
        if recorded is not None and turn == len(recorded.turns):
            row["attempt_id"] = recorded.last_attempt
        await execution.attempts.tool_called(marker, row)
        raise _ApprovalNeeded(call)

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
            on_answer=on_answer,
            before_tool=before_tool if approve else None,
        )
        loop = AgentLoop(execution.llm(agent), toolbox, limits=loop_limits(agent), hooks=hooks)
        resume: LoopResume | None = None
        if recorded is not None and recorded.turns:
            resume = recorded.resume(execution.messages(agent))
            state["resumed_turns"] = resume.turns
            logger.info(
                "task %s: the agent loop goes on from its %d recorded turn(s)",
                execution.task.task_id,
                resume.turns,
            )
        waiting: list[ToolCall] = []
        try:
            if resume is not None:
                result = await loop.run(resume=resume)
            else:
                result = await loop.run(execution.messages(agent))
        except* _ApprovalNeeded as group:
            waiting = [e.call for e in group.exceptions if isinstance(e, _ApprovalNeeded)]
    if waiting:
        _hand_off(execution, waiting)
        return
    execution.answered(result.response)


def _hand_off(execution: Execution, calls: list[ToolCall]) -> None:
    """The task waits for a person to approve or reject ``calls``."""
    execution.result.status = ExecutionStatus.AWAITING_HUMAN
    pending = [{"id": c.id, "name": c.name, "arguments": c.arguments_json()} for c in calls]
    execution.result.metadata["pending_approval"] = pending
    shown = ", ".join(f"{c.name}({c.arguments_json()})" for c in calls)
    execution.result.metadata["handoff_prompt"] = (
        f"approve or reject the tool call(s) {shown}: coditect task approve|reject"
    )
    logger.info("task %s waits for a person to approve %s", execution.task.task_id, shown)


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

"""The bounded agent loop: call the model with tools, run the calls it asked for, send the
results back, until it answers without a call. Knows no tasks, no store, no project file: the
caller (orchestration) gives the model (a :class:`~coditect_core.llm_abstractions.BaseLlm`, the
task's request pipeline), the conversation, the tools, the bounds and the hooks that record.

* The tools of several :class:`~.base.Toolset` are one :class:`ToolBox` (a name belongs to one
  source; two sources with the same tool name are refused).
* A call's failure (an exception, a timeout, an unknown tool, arguments that are not a JSON
  object or do not fit) is an error result the model sees and may react to, never the loop's
  failure; a :class:`~coditect_core.errors.ToolsetError` (a dead server) is one too, naming the
  source, and is logged.
* The calls of one turn run at once, at most ``max_parallel_tools`` at a time; their results go
  back in the order the model made the calls, one ``tool`` message each.
* Bounds (:class:`LoopLimits`): ``max_turns`` model turns and ``max_tool_calls`` tool calls; either
  reached raises :class:`~coditect_core.errors.AgentLoopError` whose message says which.
* Whatever ends the loop (an answer, a bound, a hook's error, cancellation), every call the model
  made is answered before the conversation is handed to ``on_conversation``: a call not run is
  answered with an error result (``cancelled``, ``not run: ...``), so a recorded conversation is
  always valid for every provider.
* :class:`LoopHooks` are the places the caller plugs into: before each model call (the budget
  check: raise to stop), after each model turn and each tool call (record them), before each
  tool call (approvals: run it, or answer it without running), when the model answers without
  calls (acceptance checks: accept, or send a message and go on), and the conversation whenever
  it is complete. :class:`LoopResume` goes on from a recorded loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentLoopError, ToolError, ToolsetError
from ..llm_abstractions.base_llm import BaseLlm, LlmResponse
from ..llm_abstractions.messages import Message, Messages, normalize_messages, tool_message
from ..llm_abstractions.tool_types import Tool, ToolCall
from .base import ToolResult, Toolset, truncate_text

__all__ = [
    "AgentLoop",
    "LoopHooks",
    "LoopLimits",
    "LoopResult",
    "LoopResume",
    "ToolBox",
    "ToolCallRecord",
    "pending_calls",
]

logger = logging.getLogger(__name__)

CANCELLED = "cancelled: the tool call was stopped before it finished"


@dataclass(frozen=True, slots=True)
class LoopLimits:
    """The bounds of one loop: model turns, tool calls in all, seconds per tool call (``None``:
    none), tool calls running at once."""

    max_turns: int = 20
    max_tool_calls: int = 100
    tool_timeout: float | None = 60.0
    max_parallel_tools: int = 4


class ToolBox:
    """Several toolsets seen as one: the tools they offer, a call routed to its source.

    The toolsets must be open before :meth:`tools` (an MCP server lists its tools once started).
    Two toolsets offering the same name are refused with a :class:`ToolError` naming both.
    """

    def __init__(self, toolsets: Sequence[Toolset] = ()) -> None:
        self.toolsets = list(toolsets)
        self._index: dict[str, tuple[Toolset, Tool]] | None = None

    def _tools_by_name(self) -> dict[str, tuple[Toolset, Tool]]:
        if self._index is None:
            index: dict[str, tuple[Toolset, Tool]] = {}
            for toolset in self.toolsets:
                for tool in toolset.tools():
                    if tool.name in index:
                        other = index[tool.name][0].name
                        raise ToolError(
                            f"two tool sources offer a tool named {tool.name!r}: {other!r} and "
                            f"{toolset.name!r}; give one of them another name or prefix",
                            tool=tool.name,
                        )
                    index[tool.name] = (toolset, tool)
            self._index = index
        return self._index

    def tools(self) -> list[Tool]:
        """Every tool, in the toolsets' order."""
        return [tool for _, tool in self._tools_by_name().values()]

    def names(self) -> list[str]:
        """Every tool's name, sorted."""
        return sorted(self._tools_by_name())

    def source(self, name: str) -> Toolset | None:
        """The toolset offering ``name``, or ``None``."""
        found = self._tools_by_name().get(name)
        return found[0] if found is not None else None


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call as it happened: the turn that asked for it, the call, its result, how long
    it took, and the source that ran it (``None``: not run)."""

    turn: int
    call: ToolCall
    result: ToolResult
    duration_s: float
    toolset: str | None = None

    @property
    def error(self) -> str | None:
        """The error the model was told, or ``None``."""
        return self.result.content if self.result.is_error else None


@dataclass(slots=True)
class LoopResume:
    """Where a recorded loop goes on from: the conversation so far (it may end with an
    assistant's calls not all answered), the recorded results of those calls by call id (not
    run again), and the model turns and tool calls already made (counted against the bounds)."""

    messages: list[Message]
    results: Mapping[str, ToolResult] = field(default_factory=dict)
    turns: int = 0
    tool_calls: int = 0


Hook = Callable[..., Any]
"""A hook: a function or a coroutine function (its result awaited)."""


@dataclass(slots=True)
class LoopHooks:
    """Where the caller plugs in; each optional, each sync or async.

    * ``before_model(messages, turn)``: before model turn ``turn`` (1-based). Raise to stop the
      loop (the budget check).
    * ``after_turn(turn, response, messages)``: the model's turn ``turn`` is in ``messages``
      (its calls not yet answered): record it.
    * ``before_tool(turn, call)``: ``None`` runs the call; a :class:`ToolResult` answers it
      without running (approvals: a refusal). Raise to stop (a hand-off to a person).
    * ``after_tool(record)``: a tool call ran (or was answered without running): record it.
    * ``on_answer(response, messages)``: the model answered without calls: ``None`` accepts the
      answer; a string is sent as the next user message and the loop goes on (checks).
    * ``on_conversation(messages)``: the conversation, every call answered: after each complete
      turn and once when the loop ends, however it ends.
    """

    before_model: Hook | None = None
    after_turn: Hook | None = None
    before_tool: Hook | None = None
    after_tool: Hook | None = None
    on_answer: Hook | None = None
    on_conversation: Hook | None = None


@dataclass(slots=True)
class LoopResult:
    """How a loop ended with an answer: the final response, the whole conversation, the model
    turns and tool calls made (resumed ones included), and the tool calls of this run."""

    response: LlmResponse
    messages: list[Message]
    turns: int
    tool_calls: int
    records: list[ToolCallRecord]


async def _hook(hook: Hook | None, *args: Any) -> Any:
    if hook is None:
        return None
    value = hook(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


def pending_calls(messages: Sequence[Message]) -> list[ToolCall]:
    """The calls of the last assistant message that no ``tool`` message after it answers."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message["role"] == "tool":
            continue
        if message["role"] != "assistant":
            return []
        answered = {m.get("tool_call_id") for m in messages[i + 1 :]}
        return [call for call in message.get("tool_calls", ()) if call.id not in answered]
    return []


class AgentLoop:
    """One agent's loop over ``llm`` and ``toolbox`` within ``limits``; ``options`` go to every
    model call (``max_tokens``, ``temperature``...). :meth:`run` runs it once."""

    def __init__(
        self,
        llm: BaseLlm,
        toolbox: ToolBox,
        *,
        limits: LoopLimits | None = None,
        hooks: LoopHooks | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.llm = llm
        self.toolbox = toolbox
        self.limits = limits or LoopLimits()
        self.hooks = hooks or LoopHooks()
        self.options = dict(options or {})

    async def run(self, messages: Messages = (), *, resume: LoopResume | None = None) -> LoopResult:
        """Loop from ``messages`` (a prompt or a conversation; checked), or from ``resume``,
        until the model answers without a call (and ``on_answer`` accepts it).

        Raises :class:`AgentLoopError` at a bound, and whatever a hook or the model raises; in
        every case the conversation handed to ``on_conversation`` has every call answered.
        """
        start = list(resume.messages) if resume else normalize_messages(messages)
        run = _Run(self, start, resume)
        return await run.go()


class _Run:
    """The state of one :meth:`AgentLoop.run`."""

    def __init__(self, loop: AgentLoop, messages: list[Message], resume: LoopResume | None):
        self.loop = loop
        self.limits = loop.limits
        self.hooks = loop.hooks
        self.messages = messages
        self.turns = resume.turns if resume else 0
        self.calls_made = resume.tool_calls if resume else 0
        self.recorded: dict[str, ToolResult] = dict(resume.results) if resume else {}
        self.done: dict[str, ToolResult] = {}
        self.records: list[ToolCallRecord] = []

    async def go(self) -> LoopResult:
        try:
            tools = self.loop.toolbox.tools()
            pending = pending_calls(self.messages)
            if pending:
                await self._answer(pending)
                await _hook(self.hooks.on_conversation, self.messages)
            while True:
                if self.turns >= self.limits.max_turns:
                    raise AgentLoopError(
                        f"the agent reached max_turns ({self.limits.max_turns}) without a final "
                        "answer (it kept calling tools)",
                        limit="max_turns",
                    )
                await _hook(self.hooks.before_model, self.messages, self.turns + 1)
                response = await self.loop.llm.generate_async(
                    self.messages, tools=tools, **self.loop.options
                )
                self.turns += 1
                assistant: Message = {"role": "assistant", "content": response.text}
                if response.tool_calls:
                    assistant["tool_calls"] = list(response.tool_calls)
                self.messages.append(assistant)
                await _hook(self.hooks.after_turn, self.turns, response, self.messages)
                if not response.tool_calls:
                    follow = await _hook(self.hooks.on_answer, response, self.messages)
                    if follow is None:
                        await _hook(self.hooks.on_conversation, self.messages)
                        return LoopResult(
                            response, self.messages, self.turns, self.calls_made, self.records
                        )
                    self.messages.append({"role": "user", "content": str(follow)})
                    await _hook(self.hooks.on_conversation, self.messages)
                    continue
                if self.turns >= self.limits.max_turns:
                    raise AgentLoopError(
                        f"the agent reached max_turns ({self.limits.max_turns}) and still asked "
                        f"for {len(response.tool_calls)} tool call(s): no final answer",
                        limit="max_turns",
                    )
                await self._answer(response.tool_calls)
                await _hook(self.hooks.on_conversation, self.messages)
        except BaseException as error:
            if pending_calls(self.messages):
                self._close(_stop_text(error))
                try:
                    await _hook(self.hooks.on_conversation, self.messages)
                except Exception:
                    logger.exception("recording the conversation of a stopped loop failed")
            raise

    async def _answer(self, calls: Sequence[ToolCall]) -> None:
        """Run ``calls`` (the recorded ones are not run again), then answer each in order."""
        self.done = {c.id: self.recorded[c.id] for c in calls if c.id in self.recorded}
        to_run = [c for c in calls if c.id not in self.done]
        room = max(0, self.limits.max_tool_calls - self.calls_made)
        over = to_run[room:]
        to_run = to_run[:room]
        self.calls_made += len(to_run)
        gate = asyncio.Semaphore(max(1, self.limits.max_parallel_tools))

        async def one(call: ToolCall) -> None:
            async with gate:
                self.done[call.id] = await self._run_call(call)

        if len(to_run) == 1:
            await one(to_run[0])
        elif to_run:
            async with asyncio.TaskGroup() as group:
                for call in to_run:
                    group.create_task(one(call))
        if over:
            raise AgentLoopError(
                f"the agent reached max_tool_calls ({self.limits.max_tool_calls}): "
                f"{len(over)} more call(s) not run",
                limit="max_tool_calls",
            )
        self._close(CANCELLED)

    def _close(self, reason: str) -> None:
        """Answer every pending call: its result when it has one, else ``reason`` (an error)."""
        for call in pending_calls(self.messages):
            result = self.done.get(call.id) or ToolResult.error(reason)
            self.messages.append(tool_message(call, result.content, is_error=result.is_error))
        self.done = {}

    async def _run_call(self, call: ToolCall) -> ToolResult:
        started = time.monotonic()
        source = self.loop.toolbox.source(call.name)
        ran: str | None = None
        if call.invalid_arguments is not None:
            text, _ = truncate_text(call.invalid_arguments, 200)
            result = ToolResult.error(
                f"{call.name}: the arguments are not a JSON object ({text!r}); call it again "
                "with a JSON object of its parameters"
            )
        elif source is None:
            known = ", ".join(self.loop.toolbox.names()) or "none"
            result = ToolResult.error(f"unknown tool {call.name!r}: the tools are {known}")
        else:
            decided = await _hook(self.hooks.before_tool, self.turns, call)
            if isinstance(decided, ToolResult):
                result = decided
            else:
                ran = source.name
                result = await self._call_source(source, call)
        record = ToolCallRecord(self.turns, call, result, time.monotonic() - started, ran)
        self.records.append(record)
        await _hook(self.hooks.after_tool, record)
        return result

    async def _call_source(self, source: Toolset, call: ToolCall) -> ToolResult:
        timeout = self.limits.tool_timeout
        try:
            async with asyncio.timeout(timeout):
                result = await source.call(call.name, call.arguments)
        except TimeoutError:
            after = f" after {timeout:g} s" if timeout is not None else ""
            return ToolResult.error(f"{call.name} timed out{after}")
        except ToolsetError as error:
            logger.warning("tool source %s failed on %s: %s", error.toolset, call.name, error)
            return ToolResult.error(f"the tool source {error.toolset!r} failed: {error}")
        except ToolError as error:
            return ToolResult.error(str(error))
        except Exception as error:
            logger.warning("tool %s raised %s", call.name, type(error).__name__)
            return ToolResult.error(f"{call.name} failed: {type(error).__name__}: {error}")
        if not isinstance(result, ToolResult):
            return ToolResult.error(f"{call.name}: its source gave no result")
        return result


def _stop_text(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return CANCELLED
    if isinstance(error, AgentLoopError):
        return f"not run: {error}"
    return f"not run: the loop stopped ({type(error).__name__})"

"""The attempts of one execution of a task, and the LLM wrapper that records them.

An *attempt* is one try of the task by one agent: it starts when the task starts, and a new one
starts before every further request that follows a failure, whether a retry on the same agent
or a fallback to the next one. :class:`Attempts` keeps the one open now (its usage and cost so
far, how it failed), the ones that ended, and the task's deadline. Before the next request goes
out it hands the attempt that ended to its hook (the orchestrator, which records it), so that
every request a provider sees is an attempt in the record, with the agent that made it.

:class:`AttemptedLlm` is the outermost wrapper of an agent's request pipeline for one
execution: its retry loop is the agent's policy, and each of its requests is counted, bounded by
the task's deadline and noted in the :class:`Attempts`.

Costs of failed requests (:func:`failure_cost`): zero when nothing can have been billed (no
request was made, or the provider refused or failed it); unknown (``None``) when the provider
may have done the work (a timeout, a dropped connection, a malformed or truncated reply).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import (
    CoditectError,
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmError,
    LlmOutputValidationError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmServerError,
    LlmTimeoutError,
    LlmWorkerLostError,
)
from ..llm_abstractions.base_llm import BaseLlm, LlmResponse, Usage
from ..llm_abstractions.messages import Messages
from ..llm_abstractions.retry import RetryPolicy
from ..llm_abstractions.wrapper import WrapperLlm
from ..secrets import mask
from .execution_result import ExecutionResult, ExecutionStatus

if TYPE_CHECKING:
    from .agent_registry import AgentConfig
    from .task import AgentTask

__all__ = [
    "AttemptHook",
    "AttemptedLlm",
    "Attempts",
    "RetryWaitHook",
    "ToolHook",
    "error_text",
    "failure_cost",
]

AttemptHook = Callable[["AgentTask", ExecutionResult, "AgentConfig"], Awaitable[None]]
ToolHook = Callable[["AgentTask", int, "dict[str, Any]"], Awaitable[None]]
"""``(task, turn, call)``: a tool call of an agent loop's turn ran (``call``: its record)."""
RetryWaitHook = Callable[["AgentTask", "AgentConfig", str, int, float], Awaitable[None]]
"""``(task, agent, error, attempt, wait)``: the agent's request ``attempt`` (its retry loop's
count) failed with ``error`` (text, masked) and is retried after ``wait`` seconds."""
"""``hook(task, ended, agent)``: the attempt ``ended`` is over; ``agent`` makes the next one."""

_UNBILLED = (
    LlmConfigurationError,
    LlmAuthenticationError,
    LlmPermissionError,
    LlmRequestError,
    LlmRateLimitError,
    LlmServerError,
)


def error_text(error: BaseException, agent: AgentConfig | None) -> str:
    """An error as a result's ``error`` text, the agent's key masked."""
    text = str(error) if isinstance(error, CoditectError) else f"{type(error).__name__}: {error}"
    key = agent.api_key_value() if agent is not None else None
    return (mask(text, [key]) if key else text) or type(error).__name__


def failure_cost(error: BaseException) -> float | None:
    """What a failed request cost: 0 if nothing can have been billed, else ``None`` (unknown).

    Nothing is billed when no request was made (configuration, an unusable agent), or when the
    provider refused or failed it (rate limit, bad request, authentication, permission, server
    error, any HTTP error status). A timeout, a dropped connection, a malformed or truncated
    reply or a filtered completion may have been billed for work we never received: unknown.
    A typed output that did not validate adds nothing: its reply came whole and was priced.
    """
    if isinstance(error, _UNBILLED) or not isinstance(error, LlmError):
        return 0.0  # (an error outside the LLM tree: an agent or a setting, before any request)
    if isinstance(error, LlmOutputValidationError):
        return 0.0  # the reply came whole and was priced; it only did not fit the schema
    status = getattr(error, "status_code", None)
    if status is not None and status >= 400:
        return 0.0
    return None


class Attempts:
    """The attempts of one execution of ``task``: the open one, and those that ended.

    ``timeout`` (seconds from now) is the task's own limit: every request is cut at it, and
    once it is up nothing is retried and no fallback is tried.
    """

    def __init__(
        self,
        task: AgentTask,
        hook: AttemptHook | None = None,
        *,
        timeout: float | None = None,
        on_wait: RetryWaitHook | None = None,
        on_tool: ToolHook | None = None,
    ) -> None:
        self.task = task
        self.hook = hook
        self.on_wait = on_wait
        self.on_tool = on_tool
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.agent: AgentConfig | None = None
        self.requests = 0  # requests made, all attempts together
        self.usage: Usage | None = None  # of the open attempt's successful requests
        self.cost: float | None = 0.0  # of the same; None once one is unknown
        self.cached: bool | None = None  # of the same: all answered from the journal
        self.failure: tuple[AgentConfig, str | None, BaseException, float] | None = None
        self.ended: list[ExecutionResult] = []
        self.lost: list[str] = []  # requests lost with the process that ran them
        self.hook_error: BaseException | None = None  # the hook's own failure: never the task's

    def succeeded(self, response: LlmResponse) -> None:
        """A request of the open attempt succeeded."""
        self.usage = response.usage if self.usage is None else self.usage + response.usage
        self.cached = response.cached and self.cached is not False
        if self.cost is not None:
            self.cost = None if response.cost_usd is None else self.cost + response.cost_usd

    def failed(
        self, agent: AgentConfig, model: str | None, error: BaseException, latency: float = 0.0
    ) -> None:
        """The open attempt failed with ``error`` (on ``agent``/``model``, after ``latency``)."""
        self.failure = (agent, model, error, latency)

    def note(self, agent: AgentConfig, error: BaseException) -> None:
        """Record ``error`` as the open attempt's failure unless a request already did."""
        if self.failure is None or self.failure[2] is not error:
            self.failed(agent, agent.model, error)

    def final_cost(self) -> float | None:
        """The open attempt's cost, its failure included."""
        if self.failure is None or self.cost is None:
            return self.cost
        extra = failure_cost(self.failure[2])
        return None if extra is None else self.cost + extra

    def _ended(self) -> ExecutionResult:
        """The failed open attempt as a result (for the record)."""
        assert self.failure is not None
        agent, model, error, latency = self.failure
        return ExecutionResult(
            self.task.task_id,
            agent=agent.name,
            status=ExecutionStatus.FAILED,
            completed_at=datetime.now(UTC),
            duration_seconds=latency,
            error=error_text(error, agent),
            model=model,
            usage=self.usage,
            attempts=1,
            interface=agent.interface.value,
            cost_usd=self.final_cost(),
        )

    async def begin(self, agent: AgentConfig) -> None:
        """Close the failed open attempt and open the next one, on ``agent``."""
        ended = self._ended()
        self.ended.append(ended)
        self.failure, self.usage, self.cost, self.agent = None, None, 0.0, agent
        self.cached = None
        if self.hook is not None:
            try:
                await self.hook(self.task, ended, agent)
            except BaseException as error:
                self.hook_error = error  # the executor lets it through: the run must stop
                raise

    async def turn_finished(self, agent: AgentConfig, response: LlmResponse, turn: int) -> None:
        """A model turn of an agent loop ended with tool calls: it is an attempt of its own
        (succeeded: its usage, cost, text and the calls it asked for, in ``metadata``), recorded
        now through the hook before its tools run; the next turn's attempt begins."""
        ended = ExecutionResult(
            self.task.task_id,
            agent=agent.name,
            status=ExecutionStatus.SUCCESS,
            completed_at=datetime.now(UTC),
            duration_seconds=response.latency_s,
            output=response.text,
            model=response.model,
            usage=self.usage,
            attempts=1,
            interface=agent.interface.value,
            cost_usd=self.cost,
            finish_reason=response.finish_reason,
            cached=bool(self.cached),
            metadata={
                "turn": turn,
                "tool_calls": [call.to_dict() for call in response.tool_calls],
            },
        )
        self.ended.append(ended)
        self.usage, self.cost, self.cached = None, 0.0, None
        if self.hook is not None:
            try:
                await self.hook(self.task, ended, agent)
            except BaseException as error:
                self.hook_error = error
                raise

    async def tool_called(self, record: Any, row: dict[str, Any]) -> None:
        """A tool call ran (``row``: what is recorded of it; its whole result goes too)."""
        if self.on_tool is not None:
            try:
                await self.on_tool(
                    self.task, record.turn, {**row, "content": record.result.content}
                )
            except BaseException as error:
                self.hook_error = error
                raise

    async def waiting(
        self, agent: AgentConfig, error: BaseException, attempt: int, wait: float
    ) -> None:
        """The open attempt failed and is retried on ``agent`` after ``wait`` seconds."""
        if self.on_wait is not None:
            try:
                await self.on_wait(self.task, agent, error_text(error, agent), attempt, wait)
            except BaseException as hook_error:
                self.hook_error = hook_error  # as in begin(): the run must stop
                raise

    def time_left(self) -> float | None:
        """Seconds until the task's timeout, if it has one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timed_out(self, cause: BaseException | None = None) -> LlmTimeoutError:
        """The error of a task whose own timeout is up: not retried, no fallback."""
        assert self.timeout is not None
        error = LlmTimeoutError(
            f"the task's timeout of {self.timeout:g}s was reached"
            + (f" ({cause})" if cause is not None else ""),
            provider=getattr(cause, "provider", None),
            retryable=False,
        )
        error.__cause__ = cause
        return error

    def retry_policy(self, policy: RetryPolicy) -> RetryPolicy:
        """``policy`` with its deadline no later than the task's."""
        left = self.time_left()
        if left is None or (policy.deadline is not None and policy.deadline <= left):
            return policy
        return replace(policy, deadline=max(left, 1e-3))


class AttemptedLlm(WrapperLlm):
    """An agent's LLM for one execution of a task: every request is an attempt's.

    Its retry loop follows ``retry`` (the agent's policy, bounded by the task's deadline). Before
    a request that follows a failure, the failed attempt ends and the next begins
    (:meth:`Attempts.begin`); each request is bounded by the task's deadline; its usage and
    cost, or its failure, go to ``attempts``.
    """

    def __init__(
        self, wrapped: BaseLlm, attempts: Attempts, agent: AgentConfig, retry: RetryPolicy
    ) -> None:
        super().__init__(wrapped, retry=attempts.retry_policy(retry))
        self.attempts = attempts
        self.agent = agent

    async def retry_waiting(self, error: LlmError, attempt: int, wait: float) -> None:
        await self.attempts.waiting(self.agent, error, attempt, wait)

    async def output_invalid(self, error: LlmOutputValidationError, tries: int) -> None:
        """A typed output is re-asked: the attempt that gave the invalid reply ends (failed,
        with the validation errors); the re-ask is the next attempt."""
        self.attempts.failed(self.agent, self.model, error)

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        attempts = self.attempts
        if attempts.failure is not None:
            await attempts.begin(self.agent)  # a retry: the failed attempt ends, this one begins
        if attempts.deadline is not None:
            if attempts.deadline <= time.monotonic():  # used up between retries
                error = attempts.timed_out()
                attempts.failed(self.agent, self.model, error)
                raise error
            deadline = attempts.deadline if deadline is None else min(deadline, attempts.deadline)
        attempts.requests += 1
        started = time.monotonic()
        try:
            response = await self.wrapped.request_async(messages, deadline=deadline, **kwargs)
        except LlmError as error:
            now = time.monotonic()
            if isinstance(error, LlmConfigurationError):
                attempts.requests -= 1  # raised before any request went out
            if attempts.deadline is not None and now >= attempts.deadline:
                cut = attempts.timed_out(error)
                attempts.failed(self.agent, self.model, cut, now - started)
                raise cut from error
            if isinstance(error, LlmWorkerLostError):
                attempts.lost.append(error.lost)
            attempts.failed(self.agent, self.model, error, now - started)
            raise
        attempts.succeeded(response)
        return response

"""The requests one execution of a task makes, and the attempts they add up to.

An *attempt* is one try of the task by one agent: it starts when the task starts (the
orchestrator records it before the executor runs), and a new one starts before every further
request that follows a failure, whether a retry on the same agent or a fallback to the next
one. :class:`Attempts` keeps the one open now (its usage and cost so far, and how it failed)
and, through its hook, hands each attempt that ended to the orchestrator *before* the next
request goes out, so that every request a provider sees is an attempt in the record, with the
agent that made it. Without a hook (a call run by a remote runner), the ended attempts travel
back in the result's ``metadata["earlier_attempts"]``.

:func:`send` makes one agent's requests for one call: retries by the agent's policy, each
request through the agent's :class:`~.limits.AgentGate` (when it has one) and within the
time left. A 429's Retry-After pauses the agent's whole queue.

Costs of failed requests (:func:`failure_cost`): zero when nothing can have been billed (no
request was made, or the provider refused or failed it); unknown (``None``) when the provider
may have done the work (a timeout, a dropped connection, a malformed or truncated reply).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    CoditectError,
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmServerError,
    LlmTimeoutError,
)
from ..llm_abstractions.base_llm import Usage
from ..llm_abstractions.retry import RetryPolicy, call_with_retry
from .execution_result import ExecutionResult, ExecutionStatus
from .limits import AgentGate

if TYPE_CHECKING:
    from .agent_registry import AgentConfig
    from .task import AgentTask

__all__ = [
    "ATTEMPT_HOOK",
    "AttemptHook",
    "Attempts",
    "error_text",
    "failure_cost",
    "request_failed",
    "send",
]

_T = TypeVar("_T")

AttemptHook = Callable[["AgentTask", ExecutionResult, "AgentConfig"], Awaitable[None]]
"""``hook(task, ended, agent)``: the attempt ``ended`` is over; ``agent`` makes the next one."""

_UNBILLED = (
    LlmConfigurationError,
    LlmAuthenticationError,
    LlmPermissionError,
    LlmRequestError,
    LlmRateLimitError,
    LlmServerError,
)

ATTEMPT_HOOK: ContextVar[AttemptHook | None] = ContextVar("coditect_attempt_hook", default=None)
"""The hook of the executions started in this context (the orchestrator sets it around its
calls, whatever runner or executor subclass they go through); ``execute(on_attempt=...)`` wins."""


def error_text(error: BaseException, agent: AgentConfig | None) -> str:
    """An error as a result's ``error`` text, without the agent's key."""
    text = str(error) if isinstance(error, CoditectError) else f"{type(error).__name__}: {error}"
    key = agent.api_key_value() if agent is not None else None
    if key and key in text:
        text = text.replace(key, "***")
    return text or type(error).__name__


def failure_cost(error: BaseException) -> float | None:
    """What a failed request cost: 0 if nothing can have been billed, else ``None`` (unknown).

    Nothing is billed when no request was made (configuration, an unusable agent), or when the
    provider refused
    or failed it (rate limit, bad request, authentication, permission, server error, any HTTP
    error status). A timeout, a dropped connection, a malformed or truncated reply or a
    filtered completion may have been billed for work we never received: unknown.
    """
    if isinstance(error, _UNBILLED) or not isinstance(error, LlmError):
        return 0.0  # (an error outside the LLM tree: an agent or a setting, before any request)
    status = getattr(error, "status_code", None)
    if status is not None and status >= 400:
        return 0.0
    return None


class Attempts:
    """The attempts of one execution of ``task``: the open one, and how the last one failed."""

    # Class defaults: a fresh instance sets only what it was given (this is on every call's
    # path); the rest is assigned on the (rare) retry or fallback.
    agent: AgentConfig | None = None
    requests = 0  # requests made, all attempts together
    usage: Usage | None = None  # of the open attempt's successful requests
    cost: float | None = 0.0  # of the same; None once one is unknown
    failure: tuple[AgentConfig, str | None, BaseException, float] | None = None
    deadline: float | None = None
    hook_error: BaseException | None = None  # the hook's own failure: never the task's
    earlier: tuple[dict[str, Any], ...] | list[dict[str, Any]] = ()  # ended, when no hook

    timeout: float | None = None

    def __init__(
        self,
        task: AgentTask,
        hook: AttemptHook | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.task = task
        self.hook = hook
        if timeout is not None:
            self.limit(timeout)

    def limit(self, timeout: float | None) -> None:
        """Give the whole execution ``timeout`` seconds from now (``None``: no limit)."""
        if timeout is not None:
            self.timeout = timeout
            self.deadline = time.monotonic() + timeout

    def succeeded(self, usage: Usage | None, cost: float | None) -> None:
        """A request of the open attempt succeeded, using ``usage`` and costing ``cost``."""
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage + usage
        if self.cost is not None:
            self.cost = None if cost is None else self.cost + cost

    def failed(
        self,
        agent: AgentConfig,
        model: str | None,
        error: BaseException,
        latency: float = 0.0,
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

    def ended(self) -> ExecutionResult:
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
            metadata={"cost": self.final_cost(), "interface": agent.interface.value},
        )

    async def begin(self, agent: AgentConfig) -> None:
        """Close the failed open attempt and open the next one, on ``agent``."""
        ended = self.ended()
        self.failure = None
        self.usage = None
        self.cost = 0.0
        self.agent = agent
        if self.hook is not None:
            try:
                await self.hook(self.task, ended, agent)
            except BaseException as error:
                self.hook_error = error  # the executor lets it through: the run must stop
                raise
        else:  # e.g. run on another machine: the result carries them back
            self.earlier = [*self.earlier, ended.to_dict()]

    def time_left(self) -> float | None:
        """Seconds until the task's timeout, if it has one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timed_out(self, cause: BaseException | None = None) -> LlmTimeoutError:
        """The error of a task whose own timeout is up: not retried, no fallback."""
        error = LlmTimeoutError(
            f"the task's timeout of {self.timeout:g}s was reached"
            + (f" ({cause})" if cause is not None else ""),
            provider=getattr(cause, "provider", None),
            retryable=False,
        )
        error.__cause__ = cause
        return error


def request_failed(
    attempts: Attempts,
    agent: AgentConfig,
    model: str | None,
    error: LlmError,
    latency: float,
    gates: dict[str, AgentGate],
    max_pause: float,
) -> None:
    """A request of ``agent`` failed: note it; a 429's Retry-After pauses the agent's queue.

    A configuration error (no key, SDK missing) is raised before any request goes out: it is
    not counted as a request.
    """
    attempts.failed(agent, model, error, latency)
    if isinstance(error, LlmConfigurationError):
        attempts.requests -= 1
    if isinstance(error, LlmRateLimitError) and error.retry_after:
        gate = gates.get(agent.name)
        if gate is None:
            gate = gates[agent.name] = AgentGate()
        gate.pause(min(error.retry_after, max_pause))


async def send(
    attempts: Attempts,
    agent: AgentConfig,
    model: str | None,
    policy: RetryPolicy,
    gates: dict[str, AgentGate],
    call: Callable[[float | None], Awaitable[_T]],
    *,
    call_timeout: float | None = None,
    estimate: int = 0,
    tokens: Callable[[_T], int | None] | None = None,
    first_error: LlmError | None = None,
) -> _T:
    """``await call(t)`` for ``agent`` until it succeeds or ``policy`` gives up.

    ``t`` is the request's timeout: ``call_timeout`` (the agent's), shortened to what is left of
    the task's timeout and of the policy's deadline (``None``: no timeout is in effect).
    ``estimate`` tokens are reserved in the agent's token bucket while the request runs, then
    replaced by ``tokens(result)``. ``first_error``: the first request was already made (by
    the caller's fast path) and failed with it; go on from there.
    """
    started = time.monotonic()
    name = agent.name
    task_deadline = attempts.deadline
    retry_deadline = None if policy.deadline is None else started + policy.deadline
    if task_deadline is not None:
        left = task_deadline - started
        if left <= 0:
            raise attempts.timed_out()
        if retry_deadline is None or task_deadline < retry_deadline:
            retry_deadline = None  # the task's deadline is the sooner: it bounds the retries
            policy = replace(policy, deadline=left)

    async def once(n: int) -> _T:
        if n == 1 and first_error is not None:
            raise first_error
        if attempts.failure is not None:
            await attempts.begin(agent)  # a retry: the failed attempt ends, this one begins
        gate = gates.get(name)
        if gate is not None:
            await gate.acquire(estimate)
        used: int | None = None
        try:
            # No timer unless a timeout is in effect: the hot path arms none.
            t = call_timeout
            if task_deadline is not None:
                left = task_deadline - time.monotonic()
                if left <= 0:  # used up waiting (for the gate, or between retries)
                    error = attempts.timed_out()
                    attempts.failed(agent, model, error)
                    raise error
                t = left if t is None else min(t, left)
            if t is not None and retry_deadline is not None:
                t = min(t, max(retry_deadline - time.monotonic(), 0.0))
            attempts.requests += 1
            t0 = time.monotonic()
            try:
                result = await call(t)
            except LlmError as error:
                now = time.monotonic()
                if attempts.deadline is not None and now >= attempts.deadline:
                    cut = attempts.timed_out(error)
                    attempts.failed(agent, model, cut, now - t0)
                    raise cut from error
                request_failed(attempts, agent, model, error, now - t0, gates, policy.max_delay)
                raise
            if tokens is not None:
                used = tokens(result)
            return result
        finally:
            if gate is not None:
                gate.release(estimate, used)

    return await call_with_retry(policy, once)

"""One retry policy for every provider: exponential backoff with full jitter, honouring Retry-After.

The SDKs' own retries are switched off, so the attempts counted here are every request made.
Only errors whose ``retryable`` is true are retried; the policy stops at ``max_attempts`` or when
the next wait would pass the overall ``deadline``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import LlmError, LlmRateLimitError

if TYPE_CHECKING:
    import tenacity

__all__ = ["NO_RETRY", "RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed call is tried again.

    ``max_attempts`` counts the first call (1 means no retry). The wait before retry *n* is a
    uniformly random time in ``[0, min(max_delay, initial_delay * multiplier**(n-1))]`` (full
    jitter), or the server's Retry-After when it gave one (capped at ``max_delay``).
    ``deadline`` bounds the whole call including waits, in seconds.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    deadline: float | None = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(error, LlmRateLimitError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return random.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, LlmError) and error.retryable


async def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[[int], Awaitable[T]],
) -> T:
    """Await ``fn(attempt)`` until it succeeds or the policy gives up; re-raise the last error.

    ``fn`` receives the 1-based attempt number so that results can report it.
    """
    import tenacity  # imported on the first call, not on `import coditect_core`

    started = time.monotonic()

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.backoff(state.attempt_number, error)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        if policy.deadline is None:
            return False
        error = state.outcome.exception() if state.outcome else None
        next_wait = policy.backoff(state.attempt_number, error)
        return time.monotonic() - started + next_wait > policy.deadline

    retrying = tenacity.AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception(_is_retryable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn(attempt.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

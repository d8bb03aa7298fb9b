"""One retry policy for every provider: exponential backoff with full jitter, honouring Retry-After.

The SDKs' own retries are switched off, so the attempts counted here are every request made.
Only errors whose ``retryable`` is true are retried; the policy stops at ``max_attempts`` or when
the next wait would pass the overall ``deadline``. The error finally raised records the number of
attempts in ``attempts``.

:func:`call_with_retry` is the one retry loop: the jitter sample drawn for a retry is both the
wait slept and the wait the deadline check sees.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import LlmError

__all__ = ["NO_RETRY", "RetryPolicy", "call_with_retry"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed call is tried again.

    ``max_attempts`` counts the first call (1 means no retry). The wait before retry *n* is a
    uniformly random time in ``[0, min(max_delay, initial_delay * multiplier**(n-1))]`` (full
    jitter), or the server's Retry-After when it gave one (capped at ``max_delay``).
    ``deadline`` (seconds, ``None``: no bound) stops retries that would start after it, and cuts
    an attempt's timeout short so that it ends by then; an attempt without a timeout is bounded
    by the SDK's own.

    The default tries a call up to 10 times within 5 minutes: a failure that may succeed again
    (a 429, a 5xx, a reset) is worth the wait (the waits add up to about a minute at most)
    rather than failing a task and blocking everything after it; the deadline, not the count,
    is what bounds a provider that stays down.
    """

    max_attempts: int = 10
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    deadline: float | None = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("initial_delay and max_delay must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be > 0 or None, got {self.deadline}")

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A ``retry_after`` on the error (the server's Retry-After) wins over the jitter; either
        way the wait is at most ``max_delay``.
        """
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return random.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


async def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[[int], Awaitable[_T]],
    *,
    started: float | None = None,
    on_failure: Callable[[LlmError, int], None] | None = None,
    on_wait: Callable[[LlmError, int, float], Awaitable[None]] | None = None,
) -> _T:
    """Await ``fn(attempt)`` until it succeeds or the policy gives up; re-raise the last error.

    The one retry loop of the package. ``fn`` receives the 1-based attempt number. Only a
    :class:`LlmError` whose ``retryable`` is true is retried; anything else propagates at once.
    The error finally raised carries the number of attempts made in ``attempts``.
    ``on_failure(error, attempt)`` sees every failed attempt, retried or not; ``on_wait(error,
    attempt, wait)`` is awaited before the wait of each retry (``wait`` seconds). ``started``
    (``time.monotonic()``, default now) is when the call began, for the policy's deadline.
    """
    if started is None:
        started = time.monotonic()
    for attempt in itertools.count(1):
        try:
            return await fn(attempt)
        except LlmError as error:
            error.attempts = attempt
            if on_failure is not None:
                on_failure(error, attempt)
            if not error.retryable or attempt >= policy.max_attempts:
                raise
            wait = policy.backoff(attempt, error)
            past = policy.deadline is not None and (
                time.monotonic() - started + wait >= policy.deadline
            )
            if past:
                raise  # the next attempt would start past the deadline
            logger.info(
                "attempt %d/%d failed (%s); retrying in %.2fs",
                attempt,
                policy.max_attempts,
                error,
                wait,
            )
            waited = error
        if on_wait is not None:
            await on_wait(waited, attempt, wait)
        del waited  # no error held while waiting
        await asyncio.sleep(wait)  # (out of the except block)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

"""The retry policy: full-jitter backoff, Retry-After, max attempts, deadline, what is retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from coditect_core.errors import (
    LlmAuthenticationError,
    LlmConnectionError,
    LlmError,
    LlmRateLimitError,
    LlmRequestError,
    LlmServerError,
)
from coditect_core.llm_abstractions import retry as retry_module
from coditect_core.llm_abstractions.retry import NO_RETRY, RetryPolicy, call_with_retry

FAST = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.002)


def failing(*errors: BaseException, result: str = "ok") -> tuple[Callable, list[int]]:
    """An ``fn`` for call_with_retry that raises ``errors`` in turn, then returns ``result``."""
    seen: list[int] = []
    script = list(errors)

    async def fn(attempt: int) -> str:
        seen.append(attempt)
        if script:
            raise script.pop(0)
        return result

    return fn, seen


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_backoff_is_full_jitter_under_the_exponential_ceiling(attempt: int) -> None:
    policy = RetryPolicy(initial_delay=0.1, multiplier=2.0, max_delay=100.0)
    ceiling = 0.1 * 2 ** (attempt - 1)
    waits = [policy.backoff(attempt) for _ in range(300)]
    assert all(0.0 <= w <= ceiling for w in waits)
    # Full jitter spreads over the whole range, not just near the ceiling.
    assert min(waits) < 0.25 * ceiling
    assert max(waits) > 0.75 * ceiling


def test_backoff_is_capped_by_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=10.0, max_delay=0.5)
    assert all(policy.backoff(8) <= 0.5 for _ in range(100))


def test_retry_after_is_honoured_exactly() -> None:
    policy = RetryPolicy(initial_delay=5.0, max_delay=10.0)
    assert policy.backoff(1, LlmRateLimitError("slow", retry_after=0.7)) == 0.7
    assert policy.backoff(3, LlmRateLimitError("slow", retry_after=0)) == 0.0


def test_retry_after_is_capped_and_never_negative() -> None:
    policy = RetryPolicy(max_delay=2.0)
    assert policy.backoff(1, LlmRateLimitError("slow", retry_after=3600)) == 2.0
    assert policy.backoff(1, LlmRateLimitError("slow", retry_after=-5)) == 0.0


def test_rate_limit_without_retry_after_uses_jitter() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=1.0)
    waits = {policy.backoff(1, LlmRateLimitError("slow")) for _ in range(20)}
    assert len(waits) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay": -1},
        {"max_delay": -1},
        {"multiplier": 0.5},
        {"deadline": 0},
    ],
)
def test_invalid_policy_is_refused(kwargs: dict[str, float]) -> None:
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_success_after_retryable_failures_reports_attempt_numbers() -> None:
    fn, seen = failing(LlmServerError("500"), LlmConnectionError("reset"))
    assert await call_with_retry(FAST, fn) == "ok"
    assert seen == [1, 2, 3]


async def test_gives_up_after_max_attempts_and_counts_them() -> None:
    fn, seen = failing(*[LlmServerError("500") for _ in range(10)])
    with pytest.raises(LlmServerError) as info:
        await call_with_retry(FAST, fn)
    assert seen == [1, 2, 3, 4]
    assert info.value.attempts == 4


async def test_no_retry_policy_makes_one_attempt() -> None:
    fn, seen = failing(LlmServerError("500"))
    with pytest.raises(LlmServerError):
        await call_with_retry(NO_RETRY, fn)
    assert seen == [1]


@pytest.mark.parametrize(
    "error",
    [
        LlmAuthenticationError("401"),
        LlmRequestError("400"),
        LlmServerError("501 not implemented", retryable=False),
        ValueError("not an LlmError"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_only_retryable_errors_are_retried(error: BaseException) -> None:
    fn, seen = failing(error)
    with pytest.raises(type(error)):
        await call_with_retry(FAST, fn)
    assert seen == [1]


async def test_a_retryable_request_error_is_retried() -> None:
    fn, seen = failing(LlmRequestError("408", status_code=408, retryable=True))
    assert await call_with_retry(FAST, fn) == "ok"
    assert seen == [1, 2]


async def test_retry_after_is_what_is_slept(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    fn, _ = failing(
        LlmRateLimitError("slow", retry_after=0.25), LlmRateLimitError("slow", retry_after=0.5)
    )
    policy = RetryPolicy(max_attempts=5, initial_delay=9.0, max_delay=10.0, deadline=None)
    assert await call_with_retry(policy, fn) == "ok"
    assert slept == [0.25, 0.5]


async def test_jitter_is_sampled_once_per_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wait the deadline check sees must be the wait that is slept: one sample per retry.
    samples = iter([0.001, 0.002, 0.003, 0.004, 0.005, 0.006])
    sampled: list[float] = []
    slept: list[float] = []

    def fake_uniform(low: float, high: float) -> float:
        sampled.append(next(samples))
        return sampled[-1]

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(retry_module.random, "uniform", fake_uniform)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    fn, seen = failing(LlmServerError("a"), LlmServerError("b"), LlmServerError("c"))
    policy = RetryPolicy(max_attempts=5, initial_delay=1.0, deadline=60.0)
    assert await call_with_retry(policy, fn) == "ok"
    assert seen == [1, 2, 3, 4]
    assert slept == sampled == [0.001, 0.002, 0.003]


async def test_a_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    fn, seen = failing(LlmRateLimitError("slow", retry_after=5.0))
    policy = RetryPolicy(max_attempts=5, max_delay=10.0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(LlmRateLimitError) as info:
        await call_with_retry(policy, fn)
    assert seen == [1]
    assert info.value.attempts == 1
    assert time.monotonic() - started < 4.0  # it did not sleep the 5 s


async def test_deadline_bounds_the_whole_call() -> None:
    seen: list[int] = []

    async def slow_failure(attempt: int) -> str:
        seen.append(attempt)
        await asyncio.sleep(0.02)
        raise LlmServerError("500")

    policy = RetryPolicy(max_attempts=1000, initial_delay=0.0, max_delay=0.0, deadline=0.1)
    with pytest.raises(LlmServerError) as info:
        await call_with_retry(policy, slow_failure)
    # 0.02 s per attempt against a 0.1 s deadline: a handful of attempts, nowhere near 1000.
    assert 1 <= len(seen) <= 8
    assert info.value.attempts == len(seen)


async def test_the_raised_error_is_the_last_one() -> None:
    last = LlmServerError("third")
    fn, _ = failing(LlmServerError("first"), LlmServerError("second"), last)
    with pytest.raises(LlmError) as info:
        await call_with_retry(RetryPolicy(max_attempts=3, initial_delay=0.0), fn)
    assert info.value is last

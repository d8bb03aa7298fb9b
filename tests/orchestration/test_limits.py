"""Per-agent limits: requests per minute (checked at the stub's side), tokens per minute from
real usage, calls at once, and a 429's Retry-After pausing the agent's whole queue."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from reliability_support import TimedStub, max_in_window, stub_agent
from stub_server import status

from coditect_core.llm_abstractions.base_llm import CallParams, LlmResponse
from coditect_core.llm_abstractions.limits import AgentGate, AgentLimits
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskExecutor,
)

FAST = RetryPolicy(max_attempts=6, initial_delay=0.0, max_delay=0.0)


def _tasks(n: int, agent: str) -> list[AgentTask]:
    return [AgentTask(f"T{i:03d}", f"task {i}", f"Say {i}.", agent=agent) for i in range(n)]


def test_limits_are_checked() -> None:
    for bad in ({"requests_per_minute": 0}, {"tokens_per_minute": -5}, {"max_concurrency": 0}):
        with pytest.raises(ValueError, match="must be > 0"):
            AgentLimits(**bad)
    assert not AgentLimits().active
    assert AgentLimits(max_concurrency=1).active


async def test_agents_without_limits_pass_their_gate_at_once() -> None:
    registry = AgentRegistry([AgentConfig("a", "custom", provider="fake")])
    executor = TaskExecutor(
        registry, limits={"a": AgentLimits(), "b": AgentLimits(requests_per_minute=60)}
    )
    free, paced = executor.gate("a"), executor.gate("b")
    assert isinstance(free, AgentGate)
    assert not free.limits.active
    assert paced.limits.requests_per_minute == 60
    entering = [asyncio.ensure_future(free.acquire(1000)) for _ in range(50)]
    await asyncio.sleep(0)  # one turn of the loop: nothing to wait for
    assert all(e.done() for e in entering)
    first = asyncio.ensure_future(paced.acquire())
    second = asyncio.ensure_future(paced.acquire())
    await asyncio.sleep(0.05)
    assert first.done()
    assert not second.done()  # 60 a minute: the next one a second later
    second.cancel()


@pytest.mark.parametrize("faults", [0.0, 0.3])
async def test_request_rate_at_the_stub_never_exceeds_the_limit(faults: float) -> None:
    rpm = 300.0  # one request every 0.2 s
    interval = 60.0 / rpm
    n = 14
    with TimedStub(fault_rate=faults, seed=3, fault_kinds=("server_error",)) as stub:
        registry = AgentRegistry([stub_agent("gpt", stub.url, retry=FAST)])
        executor = TaskExecutor(registry, limits={"gpt": AgentLimits(requests_per_minute=rpm)})
        orchestrator = ProjectOrchestrator(executor=executor)
        orchestrator.add_tasks(_tasks(n, "gpt"))
        summary = await orchestrator.run(max_concurrency=8)
        await orchestrator.aclose()
        times = [t for t, _, _ in stub.arrivals]
    assert summary.ok
    assert len(times) >= n  # retries are requests too, and are paced alike
    if faults:
        assert len(times) > n
    # The limiter spaces starts by 60/rpm; at the server a window may catch one more request
    # than its share only through network jitter at its edge.
    for window in (interval, 1.0, 2.0):
        allowed = math.ceil(window / interval - 1e-9) + 1
        assert max_in_window(times, window) <= allowed, (window, sorted(times))
    span = max(times) - min(times)
    assert span >= (len(times) - 1) * interval * 0.9  # paced, not bunched (behaviour, not speed)


class _Counting(FakeLlm):
    """FakeLlm noting when each call started (loop time) and its use."""

    log: list[tuple[float, int]]

    async def _generate(self, client: Any, messages: Any, params: CallParams) -> LlmResponse:
        started = asyncio.get_running_loop().time()
        response = await super()._generate(client, messages, params)
        self.log.append((started, response.usage.total_tokens))
        return response


async def test_tokens_per_minute_counts_real_usage() -> None:
    tpm = 60_000  # 1,000 tokens a second; the bucket holds a minute's worth
    register_llm("counting", _Counting, replace=True)
    try:
        agent = AgentConfig(
            "tok", "custom", provider="counting", provider_options={"default": "w " * 90}
        )
        executor = TaskExecutor(
            AgentRegistry([agent]), limits={"tok": AgentLimits(tokens_per_minute=tpm)}
        )
        llm = executor.get_llm("tok")
        llm.log = []  # type: ignore[attr-defined]
        tasks = iter(_tasks(1000, "tok"))
        assert (await executor.execute(next(tasks))).succeeded
        per_call = llm.log[0][1]  # type: ignore[attr-defined]
        for _ in range(tpm // per_call + 10):  # a minute's worth, then ten more calls
            result = await executor.execute(next(tasks))
            assert result.succeeded, result.error
        await executor.aclose()
    finally:
        unregister_llm("counting")
    log: list[tuple[float, int]] = llm.log  # type: ignore[attr-defined]
    assert {tokens for _, tokens in log} == {per_call}
    t0 = log[0][0]
    rate = tpm / 60
    used = 0
    for started, tokens in log:  # never more than a minute's worth plus what has drained
        assert used <= tpm + rate * (started - t0) + 1e-6, (used, started - t0)
        used += tokens
    assert used > tpm  # so the bucket had to hold calls back...
    assert log[-1][0] - t0 >= (used - log[-1][1] - tpm) / rate * 0.95  # ...and it did


async def test_max_concurrency_is_shared_by_the_agents_tasks() -> None:
    active = peak = 0

    class Slow(FakeLlm):
        async def _generate(self, client: Any, messages: Any, params: CallParams) -> LlmResponse:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await asyncio.sleep(0.03)
                return await super()._generate(client, messages, params)
            finally:
                active -= 1

    register_llm("slow", Slow, replace=True)
    try:
        registry = AgentRegistry([AgentConfig("s", "custom", provider="slow")])
        executor = TaskExecutor(registry, limits={"s": AgentLimits(max_concurrency=2)})
        orchestrator = ProjectOrchestrator(executor=executor)
        orchestrator.add_tasks(_tasks(12, "s"))
        summary = await orchestrator.run(max_concurrency=8)
        await orchestrator.aclose()
    finally:
        unregister_llm("slow")
    assert summary.ok
    assert peak == 2


async def test_a_429_retry_after_pauses_the_agents_whole_queue() -> None:
    pause = 0.5
    with TimedStub(latency=0.03) as stub:
        stub.script(status(429, retry_after=pause))
        registry = AgentRegistry([stub_agent("gpt", stub.url)])
        orchestrator = ProjectOrchestrator(executor=TaskExecutor(registry))
        orchestrator.add_tasks(_tasks(16, "gpt"))
        summary = await orchestrator.run(max_concurrency=4)
        await orchestrator.aclose()
        arrivals = sorted(stub.arrivals)
    assert summary.ok
    (t429,) = [t for t, _, action in arrivals if action == "status"]
    # The calls in flight when the 429 came back were sent before it; nothing else starts,
    # on any lane, until the pause is over (without it: a request every ~8 ms here).
    during = [t - t429 for t, _, _ in arrivals if t429 + 0.1 <= t < t429 + pause - 0.05]
    assert during == []
    assert len(arrivals) == 17

"""The load drill, with the defaults: 2,000 tasks of a graph on the real OpenAI SDK against the
loopback stub at 10 ms, 64 at once, with 20 % of the requests failing (429 with Retry-After,
500, connection resets, a proxy's HTML 502 page). Every task must complete, and the stub must have
sent exactly one successful reply per task: no task fails for a transient fault, and no reply is
paid for twice.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from reliability_support import stub_agent, stub_process

from coditect_core.orchestration import AgentRegistry, AgentTask, ProjectOrchestrator, TaskStatus

pytestmark = pytest.mark.slow

TASKS = 2000


def _graph(n: int, seed: int = 11) -> list[AgentTask]:
    """Each task after the first 20 depends on one or two of the 50 before it: one failure
    would block hundreds downstream."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        before = [f"T{j:04d}" for j in range(max(0, i - 50), i)] if i >= 20 else []
        deps = sorted(rng.sample(before, rng.randint(1, 2))) if before else []
        tasks.append(AgentTask(f"T{i:04d}", f"task {i}", f"Say {i}.", dependencies=deps))
    return tasks


@pytest.mark.timeout(240)
async def test_load_drill_with_the_default_retry_policy() -> None:
    args = ("--fault-rate", "0.2", "--seed", "3", "--latency", "0.01")
    kinds = ("--fault-kinds", "rate_limit,server_error,reset,html", "--no-record")
    with stub_process(*args, *kinds) as stub:
        agent = stub_agent("gpt", stub.url)  # no retry setting: the default policy
        orchestrator = ProjectOrchestrator(AgentRegistry([agent]), default_agent="gpt")
        orchestrator.add_tasks(_graph(TASKS))
        async with orchestrator:
            summary = await asyncio.wait_for(orchestrator.run(max_concurrency=64), 200)
        stats = stub.stats()
    assert summary.counts["completed"] == TASKS, summary.counts
    assert all(s is TaskStatus.COMPLETED for s in summary.statuses.values())
    assert set(stats["faults"]) == {"status", "reset", "html"}, stats  # status: 429s and 500s
    assert stats["requests"] > TASKS * 1.15  # the faults were there
    assert stats["replies"] == TASKS  # one successful reply per task, none paid for twice

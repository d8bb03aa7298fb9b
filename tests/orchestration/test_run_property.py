"""Property test of ProjectOrchestrator.run over random DAGs with random failures: every task
runs exactly once, never before its dependencies, never more than max_concurrency at once, and
the blocked tasks are exactly the descendants of the failed ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orch_helpers import Tracker
from tracking_llm import TrackingLlm

from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskPriority,
    TaskStatus,
)


@pytest.fixture(autouse=True, scope="module")
def tracking_provider() -> Iterator[None]:
    register_llm("tracking", TrackingLlm, replace=True)
    yield
    unregister_llm("tracking")


@st.composite
def projects(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(1, 18))
    ids = [f"n{i}" for i in range(n)]
    deps = {
        tid: sorted(draw(st.sets(st.sampled_from(ids[:i]), max_size=3))) if i else []
        for i, tid in enumerate(ids)
    }
    return {
        "deps": deps,
        "order": draw(st.permutations(ids)),  # definition order is not topological
        "fail": draw(st.sets(st.sampled_from(ids), max_size=max(1, n // 3))),
        "priority": {t: draw(st.sampled_from(list(TaskPriority))) for t in ids},
        "delay": {t: draw(st.sampled_from([0.0, 0.0, 0.001, 0.003])) for t in ids},
        "max_concurrency": draw(st.integers(1, 5)),
    }


def descendants_of(deps: dict[str, list[str]], roots: set[str]) -> set[str]:
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for tid, needs in deps.items():
            if tid not in out and any(d in roots or d in out for d in needs):
                out.add(tid)
                changed = True
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(projects())
def test_random_dags(project: dict[str, object]) -> None:
    deps: dict[str, list[str]] = project["deps"]  # type: ignore[assignment]
    fail: set[str] = project["fail"]  # type: ignore[assignment]
    limit: int = project["max_concurrency"]  # type: ignore[assignment]
    tracker = Tracker()
    agent = AgentConfig(
        "track",
        "custom",
        provider="tracking",
        provider_options={"tracker": tracker, "fail": fail, "delays": project["delay"]},
    )
    orch = ProjectOrchestrator(AgentRegistry([agent]), default_agent="track")
    orch.add_tasks(
        AgentTask(tid, tid, dependencies=deps[tid], priority=project["priority"][tid])  # type: ignore[index]
        for tid in project["order"]  # type: ignore[attr-defined]
    )

    summary = asyncio.run(asyncio.wait_for(orch.run(max_concurrency=limit), 30))

    blocked = descendants_of(deps, fail)
    ran = set(deps) - blocked
    assert set(tracker.starts) == ran
    assert all(len(starts) == 1 for starts in tracker.starts.values())
    for tid in ran:
        for dep in deps[tid]:
            assert tracker.ends[dep] < tracker.starts[tid][0], f"{tid} started before {dep} ended"
    assert tracker.peak <= limit
    assert tracker.active == 0
    expected = {
        tid: TaskStatus.BLOCKED
        if tid in blocked
        else TaskStatus.FAILED
        if tid in fail
        else TaskStatus.COMPLETED
        for tid in deps
    }
    assert summary.statuses == expected

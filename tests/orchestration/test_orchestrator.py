"""ProjectOrchestrator: tasks, execute_task, by-hand transitions, runs (order, priority,
blocking, fail_fast, cancellation, resume), the observer hook, and the report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from orch_helpers import Tracker
from tracking_llm import TrackingLlm

from coditect_core.errors import SchedulingError
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    EventLog,
    ExecutionStatus,
    OrchestratorObserver,
    ProjectOrchestrator,
    TaskStatus,
)

P, IP, C, F, B, X, H = (
    TaskStatus.PENDING,
    TaskStatus.IN_PROGRESS,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.BLOCKED,
    TaskStatus.CANCELLED,
    TaskStatus.AWAITING_HUMAN,
)


@pytest.fixture(autouse=True)
def tracking_provider() -> Iterator[None]:
    register_llm("tracking", TrackingLlm, replace=True)
    yield
    unregister_llm("tracking")


def orchestrator(
    tracker: Tracker,
    *,
    fail: set[str] | frozenset[str] = frozenset(),
    delays: dict[str, float] | None = None,
    extra: tuple[AgentConfig, ...] = (),
    observers: tuple[OrchestratorObserver, ...] = (),
) -> ProjectOrchestrator:
    agent = AgentConfig(
        "track",
        "custom",
        provider="tracking",
        provider_options={"tracker": tracker, "fail": fail, "delays": delays or {}},
    )
    return ProjectOrchestrator(
        AgentRegistry([agent, *extra]), default_agent="track", observers=observers
    )


def order_of(tracker: Tracker) -> list[str]:
    return [tid for tid, _ in sorted(tracker.starts.items(), key=lambda kv: kv[1][0])]


def test_adding_and_looking_up_tasks() -> None:
    orch = orchestrator(Tracker())
    orch.add_task(AgentTask("A", "a"))
    with pytest.raises(SchedulingError, match="duplicate task id 'A'"):
        orch.add_task(AgentTask("A", "again"))
    with pytest.raises(SchedulingError, match="duplicate task id 'B'"):
        orch.add_tasks([AgentTask("B", "b"), AgentTask("B", "b2")])
    assert list(orch.tasks) == ["A"]  # nothing of the refused batch was added
    orch.add_tasks(
        [
            AgentTask("B", "b", dependencies=["A"]),
            AgentTask("C", "c", priority="critical"),
            AgentTask("D", "d", status="completed"),
        ]
    )
    assert orch.get_task("B").title == "b"
    with pytest.raises(SchedulingError, match="unknown task 'Z'"):
        orch.get_task("Z")
    assert [t.task_id for t in orch.get_ready_tasks()] == ["C", "A"]


async def test_execute_task_records_the_result_and_refuses_unmet_dependencies() -> None:
    tracker, log = Tracker(), EventLog()
    orch = orchestrator(tracker, fail={"C"}, observers=(log,))
    orch.add_tasks(
        [
            AgentTask("A", "a"),
            AgentTask("B", "b", dependencies=["A"]),
            AgentTask("C", "c"),
            AgentTask("D", "d", dependencies=["nope"]),
        ]
    )
    with pytest.raises(SchedulingError, match=r"dependencies not completed: A \(pending\)"):
        await orch.execute_task("B")
    with pytest.raises(SchedulingError, match="unknown task 'nope'"):
        await orch.execute_task("D")
    result = await orch.execute_task("A")
    task = orch.get_task("A")
    assert result.status is ExecutionStatus.SUCCESS
    assert task.status is C
    assert orch.get_result("A") is result
    assert task.started_at is not None
    assert task.completed_at is not None
    assert task.started_at <= task.completed_at
    b = await orch.execute_task("B")
    assert (
        "### A: a\noutput of A" in orch.executor.get_llm("track").calls[-1].messages[1]["content"]
    )  # type: ignore[attr-defined]
    assert b.succeeded
    failed = await orch.execute_task("C")
    assert failed.status is ExecutionStatus.FAILED
    assert orch.get_task("C").status is F
    assert orch.get_task("C").notes == ["failed: [tracking] scripted failure of C"]
    assert [(e.kind, e.status) for e in log.for_task("A")] == [
        ("task_started", "in_progress"),
        ("attempt_finished", "completed"),
    ]


async def test_run_follows_dependencies_and_priority() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker)
    orch.add_tasks(
        [
            AgentTask("low", "t", priority="low"),
            AgentTask("root", "t"),
            AgentTask("crit", "t", priority="critical", dependencies=["root"]),
            AgentTask("high", "t", priority="high"),
            AgentTask("med", "t"),
        ]
    )
    summary = await orch.run(max_concurrency=1)
    assert summary.ok
    # One slot: the most urgent ready task always goes next; crit waits for root.
    assert order_of(tracker) == ["high", "root", "crit", "med", "low"]
    assert summary.counts["completed"] == 5
    assert tracker.peak == 1


async def test_failure_blocks_exactly_its_descendants() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, fail={"B"})
    orch.add_tasks(
        [
            AgentTask("A", "t"),
            AgentTask("B", "t", dependencies=["A"]),
            AgentTask("C", "t", dependencies=["B"]),
            AgentTask("D", "t", dependencies=["C", "E"]),
            AgentTask("E", "t"),
            AgentTask("F", "t", dependencies=["E"]),
        ]
    )
    summary = await orch.run(max_concurrency=3)
    assert summary.statuses == {"A": C, "B": F, "C": B, "D": B, "E": C, "F": C}
    assert not summary.ok
    assert set(tracker.starts) == {"A", "B", "E", "F"}
    assert orch.get_task("C").notes == ["blocked: upstream task B is failed"]
    report = orch.generate_report()
    assert report["status_counts"]["blocked"] == 2
    assert report["progress"] == pytest.approx(3 / 6)
    row = next(r for r in report["tasks"] if r["task_id"] == "B")
    assert row["error"] == "[tracking] scripted failure of B"
    assert row["status"] == "failed"


async def test_a_bad_graph_is_refused_before_anything_runs() -> None:
    tracker, log = Tracker(), EventLog()
    orch = orchestrator(tracker, observers=(log,))
    orch.add_tasks(
        [
            AgentTask("ok", "t"),
            AgentTask("A", "t", dependencies=["B"]),
            AgentTask("B", "t", dependencies=["A"]),
        ]
    )
    with pytest.raises(SchedulingError, match="dependency cycle: A -> B -> A"):
        await orch.run()
    assert tracker.starts == {}
    assert log.events == []
    with pytest.raises(ValueError, match="max_concurrency"):
        await orch.run(max_concurrency=0)


async def test_fail_fast_cancels_in_flight_and_starts_nothing_more() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, fail={"bad"}, delays={"slow": 30.0, "bad": 0.05})
    orch.add_tasks(
        [
            AgentTask("slow", "t", priority="high"),
            AgentTask("bad", "t", priority="high"),
            AgentTask("later", "t", priority="low"),
            AgentTask("child", "t", dependencies=["bad"]),
        ]
    )
    summary = await asyncio.wait_for(orch.run(max_concurrency=2, fail_fast=True), 10)
    assert summary.statuses == {"slow": X, "bad": F, "later": P, "child": B}
    assert summary.stop_reason == "fail_fast: task bad failed"
    assert orch.get_result("slow").status is ExecutionStatus.CANCELLED  # type: ignore[union-attr]
    assert "later" not in tracker.starts


async def test_cancelling_a_run_leaves_truthful_states_and_the_next_run_resumes() -> None:
    tracker, log = Tracker(), EventLog()
    delays = {"quick": 0.0, "slow1": 30.0, "slow2": 30.0}
    orch = orchestrator(tracker, delays=delays, observers=(log,))
    orch.add_tasks(
        [
            AgentTask("quick", "t", priority="critical"),
            AgentTask("slow1", "t"),
            AgentTask("slow2", "t"),
            AgentTask("after", "t", dependencies=["slow1"]),
            AgentTask("tail", "t", priority="low"),
        ]
    )
    run = asyncio.create_task(orch.run(max_concurrency=2))
    for _ in range(500):  # bounded: until both slow calls are in flight
        if tracker.active == 2 and "quick" in tracker.ends:
            break
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    statuses = {tid: t.status for tid, t in orch.tasks.items()}
    assert statuses == {"quick": C, "slow1": X, "slow2": X, "after": P, "tail": P}
    assert orch.get_task("slow1").notes == ["interrupted: the run was cancelled"]
    assert tracker.active == 0
    assert log.events[-1].kind == "run_finished"

    # The next run re-runs the interrupted tasks and what never started, not what completed.
    for tid in delays:
        delays[tid] = 0.0
    summary = await orch.run(max_concurrency=2)
    assert summary.ok
    assert {tid: len(starts) for tid, starts in tracker.starts.items()} == {
        "quick": 1,
        "slow1": 2,
        "slow2": 2,
        "after": 1,
        "tail": 1,
    }


async def test_observer_sees_start_before_the_call_and_results_before_dependents() -> None:
    log = EventLog()
    statuses_at_call: dict[str, tuple[str, str | None]] = {}

    def reply(messages: list[dict[str, str]]) -> str:
        tid = messages[1]["content"].split(":", 1)[0].removeprefix("# Task ")
        last = log.for_task(tid)[-1]
        statuses_at_call[tid] = (last.kind, last.status)
        return f"out {tid}"

    agent = AgentConfig("f", "custom", provider="fake", provider_options={"default": reply})
    orch = ProjectOrchestrator(AgentRegistry([agent]), observers=[log])
    orch.add_tasks([AgentTask("A", "a"), AgentTask("B", "b", dependencies=["A"])])
    await orch.run(max_concurrency=2)
    assert statuses_at_call == {
        "A": ("task_started", "in_progress"),
        "B": ("task_started", "in_progress"),
    }
    kinds = [(e.kind, e.task_id) for e in log.events]
    assert kinds == [
        ("run_started", None),
        ("task_started", "A"),
        ("attempt_finished", "A"),
        ("task_started", "B"),
        ("attempt_finished", "B"),
        ("run_finished", None),
    ]
    started = log.for_task("A")[0]
    assert started.details == {"previous": "pending", "agent": "f", "interface": "api"}


async def test_a_failing_observer_stops_the_run() -> None:
    class Broken(OrchestratorObserver):
        async def attempt_finished(self, task: AgentTask, result: Any, **_: Any) -> None:
            if task.task_id == "A":
                raise OSError("disk full")

    tracker = Tracker()
    orch = orchestrator(tracker, delays={"S": 30.0}, observers=(Broken(),))
    orch.add_tasks(
        [
            AgentTask("S", "t", priority="high"),
            AgentTask("A", "t"),
            AgentTask("after", "t", dependencies=["A"]),
            AgentTask("other", "t", priority="low"),
        ]
    )
    with pytest.raises(OSError, match="disk full"):
        await asyncio.wait_for(orch.run(max_concurrency=2), 10)
    assert "after" not in tracker.starts
    assert "other" not in tracker.starts
    assert orch.get_task("S").status is X
    assert orch.get_task("A").status is C  # its result was in memory before the write failed
    assert orch._run is None


async def test_interactive_task_waits_for_a_person_then_the_next_run_continues() -> None:
    tracker = Tracker()
    person = AgentConfig("person", "custom", interface="interactive")
    orch = orchestrator(tracker, extra=(person,))
    orch.add_tasks(
        [
            AgentTask("review", "Review the design", agent="person"),
            AgentTask("build", "Build it", dependencies=["review"]),
            AgentTask("docs", "Write docs"),
        ]
    )
    summary = await orch.run(max_concurrency=2)
    assert summary.statuses == {"review": H, "build": P, "docs": C}
    handoff = orch.generate_report()["tasks"][0]["handoff_prompt"]
    assert "coditect task complete review" in handoff
    with pytest.raises(SchedulingError, match="already completed"):
        await orch.complete_task("docs")
    await orch.complete_task("review", "approved with two changes", note="checked by Ana")
    assert orch.get_task("review").notes[-1] == "checked by Ana"
    summary = await orch.run(max_concurrency=2)
    assert summary.ok
    prompt = orch.executor.get_llm("track").calls[-1].messages[1]["content"]  # type: ignore[attr-defined]
    assert "### review: Review the design\napproved with two changes" in prompt
    assert set(tracker.starts) == {"docs", "build"}


async def test_completing_by_hand_during_a_run_releases_dependents_at_once() -> None:
    tracker = Tracker()
    person = AgentConfig("person", "custom", interface="interactive")
    orch = orchestrator(tracker, delays={"long": 1.0}, extra=(person,))
    orch.add_tasks(
        [
            AgentTask("ask", "t", agent="person"),
            AgentTask("next", "t", dependencies=["ask"]),
            AgentTask("long", "t"),
        ]
    )
    run = asyncio.create_task(orch.run(max_concurrency=2))
    for _ in range(500):
        if orch.get_task("ask").status is H:
            break
        await asyncio.sleep(0.01)
    await orch.complete_task("ask", "answer")
    summary = await asyncio.wait_for(run, 10)
    assert summary.ok
    assert tracker.starts["next"][0] < tracker.ends["long"]


async def test_cancel_task_during_a_run_blocks_its_dependents_only() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, delays={"long": 30.0})
    orch.add_tasks(
        [
            AgentTask("long", "t"),
            AgentTask("dep", "t", dependencies=["long"]),
            AgentTask("free", "t"),
        ]
    )
    run = asyncio.create_task(orch.run(max_concurrency=2))
    for _ in range(500):
        if "long" in tracker.starts:
            break
        await asyncio.sleep(0.01)
    await orch.cancel_task("long")
    summary = await asyncio.wait_for(run, 10)
    assert summary.statuses == {"long": X, "dep": B, "free": C}
    assert orch.get_task("long").notes == ["cancelled by user"]
    # A task cancelled by hand stays cancelled on the next run; its dependents stay blocked.
    summary = await orch.run()
    assert summary.statuses == {"long": X, "dep": B, "free": C}
    assert len(tracker.starts["long"]) == 1


async def test_failed_tasks_are_retried_by_the_next_run() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, fail={"A"})
    orch.add_tasks([AgentTask("A", "t"), AgentTask("B", "t", dependencies=["A"])])
    first = await orch.run()
    assert first.statuses == {"A": F, "B": B}
    orch.executor.get_llm("track").fail.clear()  # type: ignore[attr-defined]
    second = await orch.run()
    assert second.ok
    with pytest.raises(SchedulingError, match="already completed"):
        await orch.cancel_task("A")


async def test_fail_task_by_hand_and_a_second_concurrent_run_is_refused() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, delays={"slow": 0.5})
    orch.add_tasks(
        [AgentTask("slow", "t"), AgentTask("x", "t"), AgentTask("y", "t", dependencies=["x"])]
    )
    result = await orch.fail_task("x", "obsolete")
    assert result.error == "obsolete"
    assert orch.get_task("x").status is F
    run = asyncio.create_task(orch.run())
    await asyncio.sleep(0.1)
    with pytest.raises(SchedulingError, match="already active"):
        await orch.run()
    with pytest.raises(SchedulingError, match="tasks cannot be added"):
        orch.add_task(AgentTask("z", "t"))
    summary = await asyncio.wait_for(run, 10)
    assert summary.ok  # x was reset and run again, y followed


async def test_cancel_task_stops_a_single_execution_and_a_pending_task() -> None:
    tracker = Tracker()
    orch = orchestrator(tracker, delays={"long": 30.0})
    orch.add_tasks(
        [
            AgentTask("long", "t"),
            AgentTask("waiting", "t"),
            AgentTask("child", "t", dependencies=["waiting"]),
        ]
    )
    call = asyncio.create_task(orch.execute_task("long"))
    for _ in range(500):
        if "long" in tracker.starts:
            break
        await asyncio.sleep(0.01)
    await orch.cancel_task("long")
    result = await asyncio.wait_for(call, 5)  # returned, not raised: the user asked for it
    assert result.status is ExecutionStatus.CANCELLED
    assert orch.get_task("long").status is X
    await orch.cancel_task("waiting", "not needed any more")
    assert orch.get_task("waiting").notes == ["not needed any more"]
    summary = await orch.run()
    assert summary.statuses == {"long": X, "waiting": X, "child": B}
    assert orch.get_task("child").notes == ["blocked: depends on waiting, which is cancelled"]

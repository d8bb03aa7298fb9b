"""A ProjectOrchestrator run recorded through StoreObserver, on FakeLlm."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coditect_core.app.view import kept_task_ids
from coditect_core.errors import LlmAuthenticationError
from coditect_core.llm_abstractions.messages import Message
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskStatus,
)
from coditect_core.orchestration.observer import OrchestratorObserver
from coditect_core.orchestration.orchestrator import RunSummary
from coditect_core.orchestration.resume import agent_task_hash, plan_resume
from coditect_core.store import StateStore
from coditect_core.store.observer import StoreObserver, run_status

pytestmark = pytest.mark.timeout(60)


def _orchestrator(reply, tasks: list[AgentTask], latency: float = 0.0) -> ProjectOrchestrator:
    registry = AgentRegistry(
        [
            AgentConfig(
                "fake",
                "custom",
                provider="fake",
                model="fake-model",
                provider_options={"default": reply, "latency": latency},
            )
        ]
    )
    orchestrator = ProjectOrchestrator(registry, name="proj", default_agent="fake")
    orchestrator.add_tasks(tasks)
    return orchestrator


async def _record_run(store: StateStore, orchestrator: ProjectOrchestrator) -> str:
    run = await store.begin_run(orchestrator.name, options={"max_concurrency": 3})
    observer = StoreObserver(store, run.run_id)
    await observer.define(orchestrator)
    orchestrator.add_observer(observer)
    try:
        summary = await orchestrator.run(max_concurrency=3)
    finally:
        await orchestrator.aclose()
    status = run_status(summary)
    await store.finish_run(run.run_id, status)
    return status


def _graph() -> list[AgentTask]:
    return [
        AgentTask("A", "first", "Do A."),
        AgentTask("B", "second", "Do B.", dependencies=["A"]),
        AgentTask("C", "third", "Do C.", dependencies=["B"]),
        AgentTask("D", "apart", "Do D."),
    ]


async def test_every_transition_is_committed_before_what_follows_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    seen: list[str] = []

    def reply(messages: list[Message]) -> str:
        # Runs when the call goes out: check what another connection sees at that moment.
        tid = re.search(r"# Task (\w+):", messages[-1]["content"]).group(1)
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        status = dict(conn.execute("SELECT task_id, status FROM tasks").fetchall())
        running = conn.execute(
            "SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_ref "
            "WHERE t.task_id = ? AND a.status = 'running'",
            (tid,),
        ).fetchone()[0]
        conn.close()
        assert status[tid] == "in_progress"
        assert running == 1
        for dep in {"B": ["A"], "C": ["B"]}.get(tid, []):
            assert status[dep] == "completed"  # committed before this dependent started
        seen.append(tid)
        return f"output of {tid}"

    orchestrator = _orchestrator(reply, _graph(), latency=0.02)  # each call takes 0.02 s
    async with StateStore.open(db) as store:
        status = await _record_run(store, orchestrator)
        assert status == "succeeded"
        assert sorted(seen) == ["A", "B", "C", "D"]
        tasks = {t.task_id: t for t in store.snapshot("proj").tasks}
        assert {t.status for t in tasks.values()} == {"completed"}
        assert tasks["C"].output == "output of C"
        for tid in tasks:
            (attempt,) = store.attempts("proj", task_id=tid)
            assert attempt.status == "succeeded"
            assert (attempt.agent, attempt.model, attempt.interface) == (
                "fake",
                "fake-model",
                "api",
            )
            usage = orchestrator.get_result(tid).usage  # type: ignore[union-attr]
            assert usage is not None
            assert (attempt.prompt_tokens, attempt.completion_tokens) == (
                usage.prompt_tokens,
                usage.completion_tokens,
            )
            assert attempt.completion_tokens == 3  # "output of X": the fake counts words
            # the call's time: its 0.02 s (less a clock tick) at least, and within the attempt's
            # own start and end as the store stamped them
            assert attempt.latency_s is not None
            assert attempt.finished_at is not None
            assert 0.019 <= attempt.latency_s <= attempt.finished_at - attempt.started_at
            assert [e.status for e in store.task_history("proj", tid)] == [
                "pending",
                "in_progress",
                "completed",
            ]


async def test_failure_and_blocked_dependents_are_recorded(tmp_path: Path) -> None:
    def reply(messages: list[Message]) -> str | Exception:
        if "# Task B:" in messages[-1]["content"]:
            return LlmAuthenticationError("key refused", provider="fake", status_code=401)
        return "ok"

    async with StateStore.open(tmp_path / "state.db") as store:
        status = await _record_run(store, _orchestrator(reply, _graph()))
        assert status == "failed"
        tasks = {t.task_id: t for t in store.snapshot("proj").tasks}
        assert {tid: t.status for tid, t in tasks.items()} == {
            "A": "completed",
            "B": "failed",
            "C": "blocked",
            "D": "completed",
        }
        assert "key refused" in (tasks["B"].error or "")
        (attempt,) = store.attempts("proj", task_id="B")
        assert attempt.status == "failed"
        assert "key refused" in (attempt.error or "")
        assert store.attempts("proj", task_id="C") == []
        assert "blocked" in (store.task_history("proj", "C")[-1].note or "")
        assert set(store.succeeded_tasks("proj")) == {"A", "D"}


async def test_recorded_hashes_drive_the_resume_plan(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        first = _orchestrator("done", _graph())
        await _record_run(store, first)
        succeeded = store.succeeded_tasks("proj")

        edited = _graph()
        edited[1] = AgentTask("B", "second", "Do B, differently.", dependencies=["A"])
        again = _orchestrator("done", edited)
        hashes = {
            t.task_id: agent_task_hash(t, again.registry, again.executor.default_agent)
            for t in edited
        }
        deps = {t.task_id: t.dependencies for t in edited}
        plan = plan_resume(hashes, deps, succeeded)
        assert set(plan.run) == {"B", "C"}
        assert set(plan.skip) == {"A", "D"}
        same = {
            t.task_id: agent_task_hash(t, first.registry, first.executor.default_agent)
            for t in _graph()
        }
        assert plan_resume(same, deps, succeeded).run == ()
        await again.aclose()


def test_run_status_words() -> None:
    now = datetime.now(UTC)

    def summary(*statuses: TaskStatus, **kw: object) -> RunSummary:
        by_id = {f"T{i}": status for i, status in enumerate(statuses)}
        return RunSummary(now, now, 0.0, by_id, **kw)

    assert run_status(summary(TaskStatus.COMPLETED)) == "succeeded"
    assert run_status(summary(TaskStatus.COMPLETED, TaskStatus.BLOCKED)) == "failed"
    assert run_status(summary(TaskStatus.AWAITING_HUMAN)) == "waiting"
    assert run_status(summary(TaskStatus.PENDING)) == "incomplete"
    assert run_status(summary(TaskStatus.PENDING, cancelled=True)) == "interrupted"
    assert run_status(summary(TaskStatus.PENDING, error="boom")) == "error"


class _Started(OrchestratorObserver):
    """Sets an event when a task's call is about to go out."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}

    def event(self, task_id: str) -> asyncio.Event:
        return self.started.setdefault(task_id, asyncio.Event())

    async def task_started(self, task: AgentTask, **_: object) -> None:
        self.event(task.task_id).set()


async def _run_until_started(
    store: StateStore, orchestrator: ProjectOrchestrator, task_id: str
) -> tuple[int, asyncio.Future[RunSummary]]:
    run = await store.begin_run("proj")
    observer = StoreObserver(store, run.run_id)
    await observer.define(orchestrator)
    started = _Started()
    orchestrator.add_observer(observer)
    orchestrator.add_observer(started)
    running = asyncio.ensure_future(orchestrator.run(max_concurrency=2))
    await asyncio.wait_for(started.event(task_id).wait(), 10)
    return run.run_id, running


async def test_a_cancel_by_hand_during_a_run_is_recorded_held_an_interruption_is_not(
    tmp_path: Path,
) -> None:
    tasks = [AgentTask("A", "slow"), AgentTask("B", "after A", dependencies=["A"])]
    orchestrator = _orchestrator("ok", tasks, latency=5.0)
    with StateStore.open(tmp_path / "state.db") as store:
        run_id, running = await _run_until_started(store, orchestrator, "A")
        await orchestrator.cancel_task("A")  # a person cancels it while its call is out
        summary = await asyncio.wait_for(running, 10)
        await orchestrator.aclose()
        await store.finish_run(run_id, run_status(summary))
        held = {r.task_id: r.held for r in store.snapshot("proj").tasks}
    assert summary.statuses == {"A": TaskStatus.CANCELLED, "B": TaskStatus.BLOCKED}
    assert held == {"A": True, "B": False}

    again = _orchestrator("ok", [AgentTask("C", "slow")], latency=5.0)
    with StateStore.open(tmp_path / "other.db") as store:
        run_id, running = await _run_until_started(store, again, "C")
        running.cancel()  # the run itself is interrupted (Ctrl-C): nothing is held
        with pytest.raises(asyncio.CancelledError):
            await running
        await again.aclose()
        await store.finish_run(run_id, "interrupted")
        records = {r.task_id: (r.status, r.held) for r in store.snapshot("proj").tasks}
    assert records["C"] == ("cancelled", False)


async def test_a_completion_by_hand_during_a_run_is_recorded_kept(tmp_path: Path) -> None:
    """``complete_task`` in a live run is kept like ``coditect task complete``: the next plan
    skips it although its upstream runs after it."""
    tasks = [
        AgentTask("A", "slow"),
        AgentTask("B", "after A", dependencies=["A"]),
        AgentTask("C", "after B", dependencies=["B"]),
    ]
    orchestrator = _orchestrator("ok", tasks, latency=5.0)
    with StateStore.open(tmp_path / "state.db") as store:
        run_id, running = await _run_until_started(store, orchestrator, "A")
        await orchestrator.complete_task("B", "THE PERSON'S B")
        await orchestrator.cancel_task("A")
        summary = await asyncio.wait_for(running, 10)
        await orchestrator.aclose()
        await store.finish_run(run_id, run_status(summary))
        snapshot = store.snapshot("proj").tasks
        succeeded = store.succeeded_tasks("proj")
    records = {r.task_id: (r.status, r.output, r.held) for r in snapshot}
    assert records["B"] == ("completed", "THE PERSON'S B", True)
    assert kept_task_ids(snapshot) == {"B"}
    deps = {"A": [], "B": ["A"], "C": ["B"]}
    plan = plan_resume({t: f"h-{t}" for t in deps}, deps, succeeded, kept=kept_task_ids(snapshot))
    assert plan.kept == ("B",)  # skipped although A, its upstream, runs
    assert "B" not in plan.run

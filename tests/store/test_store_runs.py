"""Runs, task transitions, attempts and their history in the state store."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from coditect_core.errors import StateError
from coditect_core.orchestration.task import TaskStatus
from coditect_core.store import NullRecorder, StateStore
from coditect_core.store.records import AttemptOutcome, AttemptStatus

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / ".coditect" / "state.db"


def _raw(db: Path, sql: str, *args: object) -> list[tuple]:
    """Read with a separate connection: what another process would see."""
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_a_task_lifecycle_is_recorded_with_its_history(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj", options={"max_concurrency": 4})
        await store.define_tasks(run.run_id, {"A": "sha256:a", "B": "sha256:b"})
        attempt = await store.task_started(
            run.run_id, "A", agent="claude", model="claude-x", interface="api"
        )
        await store.task_finished(
            run.run_id,
            "A",
            TaskStatus.COMPLETED,
            attempt_id=attempt,
            attempt=AttemptOutcome(
                AttemptStatus.SUCCEEDED,
                prompt_tokens=11,
                completion_tokens=7,
                latency_s=0.25,
                cost=0.0012,
                output="the answer",
            ),
        )
        await store.set_task_status(run.run_id, "B", TaskStatus.BLOCKED, note="blocked by hand")
        await store.finish_run(run.run_id, "failed")

        tasks = {t.task_id: t for t in store.snapshot("proj").tasks}
        assert tasks["A"].status == "completed"
        assert tasks["A"].output == "the answer"
        assert tasks["A"].succeeded_hash == "sha256:a"
        assert tasks["B"].status == "blocked"
        assert tasks["B"].succeeded_hash is None

        history = store.task_history("proj", "A")
        assert [e.status for e in history] == ["pending", "in_progress", "completed"]
        assert all(e.run_id == run.run_id for e in history)
        assert history[0].at <= history[1].at <= history[2].at
        assert store.task_history("proj", "B")[-1].note == "blocked by hand"

        (att,) = store.attempts("proj", task_id="A")
        assert (att.agent, att.model, att.interface) == ("claude", "claude-x", "api")
        assert att.status == "succeeded"
        assert (att.prompt_tokens, att.completion_tokens) == (11, 7)
        assert att.latency_s == pytest.approx(0.25)
        assert att.cost == pytest.approx(0.0012)
        assert att.output == "the answer"
        assert att.started_at <= att.finished_at

        (record,) = store.runs("proj")
        assert record.status == "failed"
        assert record.options == {"max_concurrency": 4}
        assert record.finished_at is not None
        assert record.started_at <= record.finished_at <= time.time()
        assert (record.pid, record.host) == (os.getpid(), socket.gethostname())


async def test_an_awaited_transition_is_committed_for_other_connections(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        attempt = await store.task_started(run.run_id, "T1", agent="a")
        # Nothing else awaited: the row must already be visible to a separate connection.
        assert _raw(db, "SELECT status FROM attempts WHERE id = ?", attempt) == [("running",)]
        assert _raw(db, "SELECT status FROM tasks WHERE task_id = 'T1'") == [("in_progress",)]
        await store.task_finished(
            run.run_id, "T1", "completed", attempt_id=attempt, attempt=AttemptOutcome("succeeded")
        )
        assert _raw(db, "SELECT status FROM tasks WHERE task_id = 'T1'") == [("completed",)]
        await store.finish_run(run.run_id)


async def test_concurrent_transitions_share_commits_and_all_land(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        ids = [f"T{i}" for i in range(300)]

        async def one(tid: str) -> int:
            attempt = await store.task_started(run.run_id, tid, agent="fake")
            await store.task_finished(
                run.run_id,
                tid,
                "completed",
                attempt_id=attempt,
                attempt=AttemptOutcome("succeeded", output=f"out {tid}"),
            )
            return attempt

        attempts = await asyncio.gather(*(one(t) for t in ids))
        assert len(set(attempts)) == len(ids)
        await store.finish_run(run.run_id)
        succeeded = store.succeeded_tasks("proj")
        assert set(succeeded) == set(ids)
        assert {r.output for r in succeeded.values()} == {f"out {t}" for t in ids}
        assert len({r.seq for r in succeeded.values()}) == len(ids)
        counts = _raw(db, "SELECT status, count(*) FROM task_events GROUP BY status")
        assert dict(counts) == {"pending": 300, "in_progress": 300, "completed": 300}


async def test_a_bad_write_fails_alone(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        good = [await store.task_started(run.run_id, f"T{i}") for i in range(5)]
        outcomes = await asyncio.gather(
            *(store.attempt_finished(a, AttemptOutcome("succeeded")) for a in good),
            store.attempt_finished(999_999, AttemptOutcome("failed")),
            return_exceptions=True,
        )
        assert outcomes[:5] == [None] * 5
        assert isinstance(outcomes[5], StateError)
        assert "999999" in str(outcomes[5])
        assert {a.status for a in store.attempts("proj")} == {"succeeded"}
        # Finishing an attempt twice is refused too.
        with pytest.raises(StateError, match="not in flight"):
            await store.attempt_finished(good[0], AttemptOutcome("failed"))
        await store.finish_run(run.run_id)


async def test_same_task_twice_in_one_batch_applies_in_order(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        first = store.task_started(run.run_id, "T")
        second = store.set_task_status(run.run_id, "T", TaskStatus.CANCELLED, note="stop")
        attempt, _ = await asyncio.gather(first, second)
        assert [e.status for e in store.task_history("proj", "T")] == [
            "pending",
            "in_progress",
            "cancelled",
        ]
        assert store.snapshot("proj").tasks[0].status == "cancelled"
        await store.attempt_finished(attempt, AttemptOutcome(AttemptStatus.CANCELLED))
        await store.finish_run(run.run_id, "interrupted")


async def test_fallback_attempts_and_failure(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        first = await store.task_started(run.run_id, "T", agent="claude", interface="api")
        await store.attempt_finished(
            first, AttemptOutcome("failed", error="rate limited", prompt_tokens=3)
        )
        second = await store.attempt_started(run.run_id, "T", agent="gpt", interface="api")
        await store.task_finished(
            run.run_id,
            "T",
            TaskStatus.FAILED,
            note="failed: server error",
            attempt_id=second,
            attempt=AttemptOutcome("failed", error="server error"),
        )
        await store.finish_run(run.run_id, "failed")
        attempts = store.attempts("proj", task_id="T")
        assert [(a.agent, a.status, a.error) for a in attempts] == [
            ("claude", "failed", "rate limited"),
            ("gpt", "failed", "server error"),
        ]
        (task,) = store.snapshot("proj").tasks
        assert (task.status, task.error) == ("failed", "server error")
        assert store.succeeded_tasks("proj") == {}


async def test_unknown_statuses_are_refused(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        attempt = await store.task_started(run.run_id, "T")
        with pytest.raises(ValueError, match="expected one of"):
            await store.task_finished(run.run_id, "T", "done-ish")
        with pytest.raises(ValueError, match="attempt status"):
            await store.attempt_finished(attempt, AttemptOutcome("maybe"))
        with pytest.raises(ValueError, match="running"):
            await store.attempt_finished(attempt, AttemptOutcome("running"))
        await store.finish_run(run.run_id)


async def test_writes_need_an_active_run(db: Path) -> None:
    async with StateStore.open(db) as store:
        with pytest.raises(StateError, match="not an active run"):
            await store.task_started(12, "T")
        run = await store.begin_run("proj")
        await store.finish_run(run.run_id)
        with pytest.raises(StateError, match="not an active run"):
            await store.task_started(run.run_id, "T")


async def test_closing_mid_run_marks_it_interrupted(db: Path) -> None:
    store = StateStore.open(db)
    run = await store.begin_run("proj")
    done = await store.task_started(run.run_id, "done")
    await store.task_finished(
        run.run_id, "done", "completed", attempt_id=done, attempt=AttemptOutcome("succeeded")
    )
    await store.task_started(run.run_id, "flying", agent="a")
    await store.aclose()

    with StateStore.open(db, readonly=True) as reader:
        (record,) = reader.runs("proj")
        assert record.status == "interrupted"
        flying = reader.attempts("proj", task_id="flying")
        assert [a.status for a in flying] == ["interrupted"]
        tasks = {t.task_id: t.status for t in reader.snapshot("proj").tasks}
        assert tasks == {"done": "completed", "flying": "pending"}
        assert "interrupted" in (reader.task_history("proj", "flying")[-1].note or "")
        assert reader.snapshot("proj").in_flight == []


async def test_restart_is_a_new_run_and_keeps_history(db: Path) -> None:
    async with StateStore.open(db) as store:
        first = await store.begin_run("proj")
        await store.define_tasks(first.run_id, {"A": "h-a"})
        attempt = await store.task_started(first.run_id, "A")
        await store.task_finished(
            first.run_id, "A", "completed", attempt_id=attempt, attempt=AttemptOutcome("succeeded")
        )
        await store.finish_run(first.run_id)
        assert set(store.succeeded_tasks("proj")) == {"A"}

        second = await store.begin_run("proj", restart=True, options={"restart": True})
        assert second.run_id != first.run_id
        assert store.succeeded_tasks("proj") == {}
        assert store.snapshot("proj").tasks[0].status == "pending"
        await store.finish_run(second.run_id, "interrupted")

        runs = store.runs("proj")
        assert [(r.run_id, r.status) for r in runs] == [
            (first.run_id, "succeeded"),
            (second.run_id, "interrupted"),
        ]
        history = store.task_history("proj", "A")
        assert [e.status for e in history] == ["pending", "in_progress", "completed", "pending"]
        assert history[-1].run_id == second.run_id
        assert "restart" in (history[-1].note or "")
        assert [a.run_id for a in store.attempts("proj")] == [first.run_id]


async def test_read_only_store_reads_but_never_writes(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        await store.task_started(run.run_id, "T")
        with StateStore.open(db, readonly=True) as reader:
            assert reader.snapshot("proj").counts == {"in_progress": 1}
            with pytest.raises(StateError, match="read-only"):
                await reader.begin_run("proj")
            assert await reader.load_succeeded("proj") == {}
        await store.finish_run(run.run_id)


async def test_closed_store_refuses_calls(db: Path) -> None:
    store = StateStore.open(db)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        await store.begin_run("proj")
    with pytest.raises(StateError, match="closed"):
        store.snapshot("proj")


async def test_load_succeeded_runs_off_the_event_loop(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        attempt = await store.task_started(run.run_id, "A")
        await store.task_finished(
            run.run_id, "A", "completed", output="o", attempt_id=attempt,
            attempt=AttemptOutcome("succeeded"),
        )  # fmt: skip
        assert (await store.load_succeeded("proj"))["A"].output == "o"
        await store.finish_run(run.run_id)


def test_sync_callers_can_use_the_writer(db: Path) -> None:
    with StateStore.open(db) as store:
        info = asyncio.run(store.begin_run("proj"))
        assert store.lock_holder("proj") is not None
        assert store.call_sync(lambda conn: conn.execute("SELECT 41 + 1").fetchone()) == (42,)
        asyncio.run(store.finish_run(info.run_id))
        assert store.lock_holder("proj") is None


async def test_null_recorder_has_the_write_interface() -> None:
    recorder = NullRecorder()
    run = await recorder.begin_run("proj", options={}, restart=False)
    await recorder.define_tasks(run.run_id, {"A": "h"})
    first = await recorder.task_started(run.run_id, "A", agent="a", model=None, interface=None)
    second = await recorder.attempt_started(run.run_id, "A", agent="b")
    assert first != second
    await recorder.attempt_finished(first, AttemptOutcome("failed"))
    await recorder.task_finished(run.run_id, "A", "completed", attempt_id=second)
    await recorder.set_task_status(run.run_id, "A", "cancelled", note="x")
    assert await recorder.load_succeeded("proj") == {}
    await recorder.finish_run(run.run_id)
    await recorder.aclose()


async def test_event_loop_keeps_running_while_a_write_waits(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for a while
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        write = asyncio.create_task(store.task_started(run.run_id, "T"))
        await asyncio.sleep(0.3)
        assert not write.done()  # the writer thread waits (busy timeout) ...
        assert ticks >= 10  # ... and the event loop does not
        blocker.execute("COMMIT")
        blocker.close()
        await asyncio.wait_for(write, 10)
        ticking.cancel()
        assert store.snapshot("proj").counts == {"in_progress": 1}
        await store.finish_run(run.run_id)


async def test_a_rolled_back_batch_does_not_leave_stale_task_rows(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        # Same loop turn, so one batch: the new task's row is rolled back with the bad write,
        # then both are replayed alone.
        started, failed = await asyncio.gather(
            store.task_started(run.run_id, "NEW"),
            store.attempt_finished(123_456, AttemptOutcome("failed")),
            return_exceptions=True,
        )
        assert isinstance(started, int)
        assert isinstance(failed, StateError)
        await store.task_finished(
            run.run_id, "NEW", "completed", attempt_id=started, attempt=AttemptOutcome("succeeded")
        )
        await store.finish_run(run.run_id)
        assert set(store.succeeded_tasks("proj")) == {"NEW"}
        assert [e.status for e in store.task_history("proj", "NEW")] == [
            "pending",
            "in_progress",
            "completed",
        ]


def _held(store: StateStore, task_id: str = "A") -> bool:
    (task,) = [t for t in store.snapshot("proj").tasks if t.task_id == task_id]
    return task.held


async def test_held_is_set_by_a_cancel_by_hand_and_cleared_by_every_other_status_change(
    db: Path,
) -> None:
    async with StateStore.open(db) as store:
        run = await store.begin_run("proj")
        await store.define_tasks(run.run_id, {"A": "h-a"})
        assert not _held(store)

        async def hold() -> None:
            await store.set_task_status(run.run_id, "A", "cancelled", note="by hand", held=True)
            assert _held(store)

        await hold()
        await store.set_task_status(run.run_id, "A", "cancelled")  # a run's own cancel
        assert not _held(store)
        await hold()
        attempt = await store.task_started(run.run_id, "A")  # run again
        assert not _held(store)
        await store.task_finished(
            run.run_id, "A", "completed", attempt_id=attempt, attempt=AttemptOutcome("succeeded")
        )
        for status in ("completed", "failed", "pending", "blocked"):  # by hand, or by a run
            await hold()
            await store.task_finished(run.run_id, "A", status)
            assert not _held(store), status
        with pytest.raises(ValueError, match="only a cancelled or completed task can be held"):
            await store.task_finished(run.run_id, "A", "failed", held=True)

        await hold()
        await store.finish_run(run.run_id, "by_hand")
        again = await store.begin_run("proj")  # held from run to run...
        assert _held(store)
        await store.finish_run(again.run_id)
        restarted = await store.begin_run("proj", restart=True)  # ...until a restart
        assert not _held(store)
        await store.finish_run(restarted.run_id)

"""The writer's batches: one autocommit statement with remembered ids, the fall-back when another
connection took those ids, batches that mix transitions with direct SQL; and the in-memory store
(``StateStore.open(":memory:")``) that the store benchmark compares against."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import pytest

from coditect_core.errors import RunLockedError, StateError
from coditect_core.orchestration.task import TaskStatus
from coditect_core.store import AttemptOutcome, StateStore, bulk

pytestmark = pytest.mark.timeout(60)

OK = AttemptOutcome("succeeded", output="done", prompt_tokens=3, completion_tokens=4)


async def _run_tasks(
    store: StateStore, project: str, tasks: list[str], *, seed: int = 0
) -> dict[str, int]:
    """Start and finish every task, concurrently, each after a short random pause (many small
    batches); task -> the attempt id the store returned."""
    run = await store.begin_run(project)
    await store.define_tasks(run.run_id, {t: f"h-{t}" for t in tasks})
    ids: dict[str, int] = {}
    rng = random.Random(seed)
    pauses = {t: (rng.uniform(0, 0.05), rng.uniform(0, 0.01)) for t in tasks}

    async def one(tid: str) -> None:
        await asyncio.sleep(pauses[tid][0])
        ids[tid] = await store.task_started(run.run_id, tid, agent="a", model="m")
        await asyncio.sleep(pauses[tid][1])
        await store.task_finished(
            run.run_id, tid, TaskStatus.COMPLETED, attempt_id=ids[tid], attempt=OK
        )

    await asyncio.gather(*(one(t) for t in tasks))
    await store.finish_run(run.run_id)
    return ids


def _check(store: StateStore, project: str, ids: dict[str, int]) -> None:
    """Each task has exactly the attempt the store returned for it, succeeded, and the task
    completed with the success recorded in its history."""
    attempts = {a.task_id: a for a in store.attempts(project)}
    assert {t: a.attempt_id for t, a in attempts.items()} == ids
    assert {a.status for a in attempts.values()} == {"succeeded"}
    assert {a.output for a in attempts.values()} == {"done"}
    # NULLs are written as NULL (the rows bind placeholders for them, see state.bulk).
    assert {(a.error, a.cost, a.latency_s, a.interface) for a in attempts.values()} == {
        (None, None, None, None)
    }
    assert {(a.prompt_tokens, a.completion_tokens, a.agent) for a in attempts.values()} == {
        (3, 4, "a")
    }
    snapshot = store.snapshot(project)
    assert snapshot.counts == {"completed": len(ids)}
    succeeded = store.succeeded_tasks(project)
    assert {t: r.content_hash for t, r in succeeded.items()} == {t: f"h-{t}" for t in ids}
    for tid in ids:
        history = store.task_history(project, tid)
        assert [(e.status, e.note) for e in history[-2:]] == [
            ("in_progress", None),
            ("completed", None),
        ]
    assert {(t.error, t.output) for t in snapshot.tasks} == {(None, "done")}


async def test_two_writers_on_one_file_keep_ids_apart(tmp_path: Path) -> None:
    """Two stores (two connections, like two processes) write different projects of one file
    at the same time: ids handed out from memory collide, and the batch is redone."""
    db = tmp_path / "state.db"
    first, second = StateStore.open(db), StateStore.open(db)
    try:
        tasks = [f"T{i:03d}" for i in range(120)]
        ids_a, ids_b = await asyncio.gather(
            _run_tasks(first, "alpha", tasks, seed=1), _run_tasks(second, "beta", tasks, seed=2)
        )
        assert not set(ids_a.values()) & set(ids_b.values())
        for store in (first, second):
            _check(store, "alpha", ids_a)
            _check(store, "beta", ids_b)
        # The event ids that order successes stay unique across both projects.
        conn = sqlite3.connect(db)
        try:
            events = conn.execute("SELECT count(*), count(DISTINCT id) FROM task_events").fetchone()
        finally:
            conn.close()
        assert events[0] == events[1]
    finally:
        first.close()
        second.close()


async def test_ids_taken_by_another_connection_are_detected(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore.open(db) as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h-a", "B": "h-b"})
        first = await store.task_started(run.run_id, "A")  # the writer now remembers the ids
        # Another connection appends an event and an attempt behind the writer's back.
        with StateStore.open(db) as other:
            other_run = await other.begin_run("q")
            taken = await other.task_started(other_run.run_id, "X")
            await other.finish_run(other_run.run_id)
        assert taken == first + 1
        second = await store.task_started(run.run_id, "B")  # its remembered id was taken
        assert second == taken + 1
        await store.task_finished(run.run_id, "B", "completed", attempt_id=second, attempt=OK)
        (b,) = store.attempts("p", task_id="B")
        assert (b.attempt_id, b.status) == (second, "succeeded")


async def test_a_batch_mixing_new_tasks_and_transitions(tmp_path: Path) -> None:
    """Tasks created on the fly (direct SQL) and buffered transitions in one batch, in order."""
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h-a"})
        started = await store.task_started(run.run_id, "A")
        results = await asyncio.gather(
            store.task_finished(run.run_id, "A", "completed", attempt_id=started, attempt=OK),
            store.task_started(run.run_id, "NEW"),  # never defined: created in the batch
            store.define_tasks(run.run_id, {"LATE": "h-late"}),
            store.load_succeeded("p"),  # a read in the same batch sees the writes before it
        )
        assert set(results[3]) == {"A"}
        assert results[1] == started + 1
        counts = store.snapshot("p").counts
        assert counts == {"completed": 1, "in_progress": 1, "pending": 1}
        assert store.task_history("p", "NEW")[0].note == "new task"


async def test_a_bad_write_in_an_autocommit_batch_fails_alone(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h", "B": "h"})
        a = await store.task_started(run.run_id, "A")
        outcomes = await asyncio.gather(
            store.attempt_finished(a + 100, OK),  # no such attempt
            store.task_started(run.run_id, "B"),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], StateError)
        assert "not in flight" in str(outcomes[0])
        assert isinstance(outcomes[1], int)
        assert [x.task_id for x in store.snapshot("p").in_flight] == ["A", "B"]


async def test_batches_longer_than_one_statement(tmp_path: Path, monkeypatch) -> None:
    """An SQLite that binds few parameters (before 3.32: 999) gets several statements per batch,
    inside one explicit transaction."""
    monkeypatch.setattr(bulk, "_MAX_ROWS", 5)
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        tasks = [f"T{i:02d}" for i in range(40)]
        await store.define_tasks(run.run_id, {t: f"h-{t}" for t in tasks})
        started = await asyncio.gather(
            *(store.task_started(run.run_id, t, agent="a") for t in tasks)
        )
        ids = dict(zip(tasks, started, strict=True))
        await asyncio.gather(
            *(
                store.task_finished(run.run_id, t, "completed", attempt_id=ids[t], attempt=OK)
                for t in tasks
            )
        )
        await store.finish_run(run.run_id)
        _check(store, "p", ids)


# -- in memory --------------------------------------------------------------------------------


async def test_in_memory_store_records_a_run_like_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = StateStore.open(":memory:")
    try:
        assert store.in_memory
        ids = await _run_tasks(store, "p", [f"T{i}" for i in range(50)])
        _check(store, "p", ids)
        assert [r.status for r in store.runs("p")] == ["succeeded"]
    finally:
        await store.aclose()
    assert os.listdir(tmp_path) == []  # nothing on disk, no lock file either


async def test_in_memory_stores_are_private_and_locked_in_memory() -> None:
    one, two = StateStore.open(":memory:"), StateStore.open(":memory:")
    try:
        run = await one.begin_run("p")
        with pytest.raises(RunLockedError):
            await one.begin_run("p")
        holder = one.lock_holder("p")
        assert holder is not None
        assert holder.run_id == run.run_id
        other = await two.begin_run("p")  # another store, another database
        assert two.runs("p")[0].run_id == other.run_id
        assert len(one.runs("p")) == 1
        await one.finish_run(run.run_id)
        assert one.lock_holder("p") is None
        again = await one.begin_run("p")
        assert again.run_id == run.run_id + 1
    finally:
        one.close()
        two.close()
    with pytest.raises(StateError):
        one.snapshot("p")


def test_in_memory_store_cannot_be_read_only() -> None:
    with pytest.raises(StateError):
        StateStore.open(":memory:", readonly=True)

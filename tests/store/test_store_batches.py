"""Group commit: many concurrent writers answered by one transaction, in order; a bad write in a
group failing alone; two stores (and two processes) writing one file at the same time; and the
in-memory store (``StateStore.open(":memory:")``) that the store benchmark compares against."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from coditect_core.errors import RunLockedError, StateError
from coditect_core.orchestration.task import TaskStatus
from coditect_core.store import AttemptOutcome, StateStore
from coditect_core.store.writer import Writer

pytestmark = pytest.mark.timeout(60)

OK = AttemptOutcome("succeeded", output="done", prompt_tokens=3, completion_tokens=4)


async def _run_tasks(
    store: StateStore, project: str, tasks: list[str], *, seed: int = 0, pause: float = 0.05
) -> dict[str, int]:
    """Start and finish every task, concurrently, each after a short random pause (many small
    batches); task -> the attempt id the store returned."""
    run = await store.begin_run(project)
    await store.define_tasks(run.run_id, {t: f"h-{t}" for t in tasks})
    ids: dict[str, int] = {}
    rng = random.Random(seed)
    pauses = {t: (rng.uniform(0, pause), rng.uniform(0, 0.01)) for t in tasks}

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
    # NULLs are written as NULL.
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


async def test_two_stores_write_one_file_at_the_same_time(tmp_path: Path) -> None:
    """Two stores (two connections, like two processes) write different projects of one file
    at the same time: each row id is the one SQLite gave, none is shared."""
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


async def test_writes_of_another_connection_in_between_keep_their_ids(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore.open(db) as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h-a", "B": "h-b"})
        first = await store.task_started(run.run_id, "A")
        # Another connection appends an event and an attempt between two of the writer's.
        with StateStore.open(db) as other:
            other_run = await other.begin_run("q")
            taken = await other.task_started(other_run.run_id, "X")
            await other.finish_run(other_run.run_id)
        assert taken == first + 1
        second = await store.task_started(run.run_id, "B")
        assert second == taken + 1
        await store.task_finished(run.run_id, "B", "completed", attempt_id=second, attempt=OK)
        (b,) = store.attempts("p", task_id="B")
        assert (b.attempt_id, b.status) == (second, "succeeded")


async def test_a_group_mixing_new_tasks_transitions_and_reads(tmp_path: Path) -> None:
    """Tasks created on the fly, transitions and a read queued together, applied in order."""
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h-a"})
        started = await store.task_started(run.run_id, "A")
        results = await asyncio.gather(
            store.task_finished(run.run_id, "A", "completed", attempt_id=started, attempt=OK),
            store.task_started(run.run_id, "NEW"),  # never defined: created in the batch
            store.define_tasks(run.run_id, {"LATE": "h-late"}),
            store.load_succeeded("p"),  # a read sees the writes queued before it
        )
        assert set(results[3]) == {"A"}
        assert results[1] == started + 1
        counts = store.snapshot("p").counts
        assert counts == {"completed": 1, "in_progress": 1, "pending": 1}
        assert store.task_history("p", "NEW")[0].note == "new task"


async def test_a_bad_write_in_a_group_fails_alone(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h", "B": "h"})
        a = await store.task_started(run.run_id, "A")
        release = threading.Event()
        busy = asyncio.create_task(asyncio.to_thread(store.call_sync, lambda _: release.wait(10)))
        await asyncio.sleep(0.05)  # the writer is busy: the next two wait for it together
        together = asyncio.gather(
            store.attempt_finished(a + 100, OK),  # no such attempt
            store.task_started(run.run_id, "B"),
            return_exceptions=True,
        )
        await asyncio.sleep(0.05)
        release.set()
        outcomes = await together
        await busy
        assert isinstance(outcomes[0], StateError)
        assert "not in flight" in str(outcomes[0])
        assert isinstance(outcomes[1], int)
        assert [x.task_id for x in store.snapshot("p").in_flight] == ["A", "B"]


def test_group_commit_answers_many_concurrent_writers_in_order(tmp_path: Path) -> None:
    """200 writers queued while the writer is busy: one transaction, one commit, every caller
    answered with its own result, rows in the order queued; the one that fails fails alone."""
    db = tmp_path / "plain.db"
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t(x INTEGER NOT NULL)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    writer = Writer(conn, db)
    release = threading.Event()

    def insert(x: int | None):
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (x,)).lastrowid

    async def write() -> list[object]:
        busy = asyncio.create_task(asyncio.to_thread(writer.call_sync, lambda _: release.wait(10)))
        await asyncio.sleep(0.05)
        futures = [writer.submit(insert(None if i == 77 else i)) for i in range(200)]
        release.set()  # everything is queued: the writer takes it all at once
        await busy
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        results = asyncio.run(write())
    finally:
        writer.close()
    assert isinstance(results[77], StateError)
    assert "NOT NULL" in str(results[77])
    assert results[:77] == list(range(1, 78))
    assert results[78:] == list(range(78, 200))
    assert statements.count("COMMIT") == 2  # the busy one's, and one for the 200
    assert statements.count("BEGIN IMMEDIATE") == 2
    check = sqlite3.connect(db)
    rows = [x for (x,) in check.execute("SELECT x FROM t ORDER BY rowid")]
    check.close()
    assert rows == [i for i in range(200) if i != 77]


async def test_a_large_group_of_concurrent_writers(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        tasks = [f"T{i:03d}" for i in range(400)]
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


# -- two processes ----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from coditect_core.store import AttemptOutcome, StateStore

    db, project, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    OK = AttemptOutcome("succeeded", output="done", prompt_tokens=3, completion_tokens=4)

    async def main():
        store = StateStore.open(db)
        run = await store.begin_run(project)
        tasks = [f"T{i:03d}" for i in range(count)]
        await store.define_tasks(run.run_id, {t: f"h-{t}" for t in tasks})
        print("READY", flush=True)
        sys.stdin.readline()
        rng = random.Random(7)
        ids = {}

        async def one(tid):
            await asyncio.sleep(rng.uniform(0, 0.2))
            ids[tid] = await store.task_started(run.run_id, tid, agent="a", model="m")
            await asyncio.sleep(rng.uniform(0, 0.01))
            await store.task_finished(run.run_id, tid, "completed", attempt_id=ids[tid],
                                      attempt=OK)

        await asyncio.gather(*(one(t) for t in tasks))
        await store.finish_run(run.run_id)
        await store.aclose()
        print(json.dumps(ids), flush=True)

    asyncio.run(main())
    """
)


async def test_two_processes_write_one_file_at_the_same_time(tmp_path: Path) -> None:
    db = tmp_path / ".coditect" / "state.db"
    StateStore.open(db).close()
    tasks = [f"T{i:03d}" for i in range(200)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(db), "beta", str(len(tasks)),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"READY"
        store = StateStore.open(db)
        try:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            ids_a = await _run_tasks(store, "alpha", tasks, seed=1, pause=0.2)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            ids_b = json.loads(out.decode().strip().splitlines()[-1])
            _check(store, "alpha", ids_a)
            _check(store, "beta", ids_b)
            alpha, beta = store.runs("alpha")[0], store.runs("beta")[0]
        finally:
            await store.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not set(ids_a.values()) & set(ids_b.values())
    assert alpha.finished_at is not None
    assert beta.finished_at is not None
    assert alpha.started_at < beta.finished_at  # the two runs overlapped
    assert beta.started_at < alpha.finished_at


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

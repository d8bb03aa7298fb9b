"""Results written without waiting (``task_finished(wait=False)``, what ``StoreObserver`` does):
the order of commits, what happens when one fails, close and flush; and the WAL (SQLite's own
checkpoints keep it bounded; a reader in another process sees consistent snapshots meanwhile)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from pathlib import Path

import pytest
from test_store_readers import ReaderProcess

from coditect_core.errors import StateError
from coditect_core.llm_abstractions.messages import Message
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskStatus,
)
from coditect_core.store import AttemptOutcome, StateStore
from coditect_core.store.observer import StoreObserver, run_status
from coditect_core.store.writer import Writer

pytestmark = pytest.mark.timeout(120)

OK = AttemptOutcome("succeeded", output="done")


def _orchestrator(reply, tasks: list[AgentTask], latency: float = 0.0) -> ProjectOrchestrator:
    options = {"default": reply, "latency": latency}
    registry = AgentRegistry(
        [AgentConfig("fake", "custom", provider="fake", provider_options=options)]
    )
    orchestrator = ProjectOrchestrator(registry, name="proj", default_agent="fake")
    orchestrator.add_tasks(tasks)
    return orchestrator


async def _run(store: StateStore, orchestrator: ProjectOrchestrator, concurrency: int) -> str:
    """One recorded run; the store run is finished (``error`` if the run raised)."""
    run = await store.begin_run(orchestrator.name)
    observer = StoreObserver(store, run.run_id)
    await observer.define(orchestrator)
    orchestrator.add_observer(observer)
    status = "error"
    try:
        status = run_status(await orchestrator.run(max_concurrency=concurrency))
    finally:
        await orchestrator.aclose()
        await store.finish_run(run.run_id, status)
    return status


def _fail_completion_of(db: Path, task_id: str) -> None:
    """Make the database refuse to record ``task_id`` as completed (a failing disk, as far as
    the store can tell: its write fails inside SQLite)."""
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON tasks "
        f"WHEN new.task_id = '{task_id}' AND new.status = 'completed' "
        "BEGIN SELECT RAISE(ABORT, 'disk refused the write (test)'); END"
    )
    conn.commit()
    conn.close()


async def _post_end(
    store: StateStore, run_id: int, tid: str, attempt: int, status: str = "completed"
) -> None:
    """Queue the end of ``tid``'s attempt without waiting for its commit."""
    await store.task_finished(run_id, tid, status, attempt_id=attempt, attempt=OK, wait=False)


def _size(path: Path) -> int:
    return os.path.getsize(path)


def _names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _wal_starts(db: Path) -> int:
    """How many times the WAL started over: its header's checkpoint sequence number (read from
    the file, which changes nothing)."""
    with open(f"{db}-wal", "rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


def _task_of(messages: list[Message]) -> str:
    return re.search(r"# Task (\w+):", messages[-1]["content"]).group(1)


# -- the store ------------------------------------------------------------------------------


async def test_a_failed_result_refuses_later_awaited_writes_until_it_is_reported(
    tmp_path: Path,
) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("proj")
        await store.define_tasks(run.run_id, {t: f"h-{t}" for t in "ABC"})
        a = await store.task_started(run.run_id, "A", agent="fake")
        # An attempt that is not in flight: the write fails in the writer thread, later.
        await _post_end(store, run.run_id, "A", a + 100)
        with pytest.raises(StateError, match="not written, an earlier write failed") as info:
            await store.task_started(run.run_id, "B", agent="fake")
        assert "not in flight" in str(info.value.__cause__)
        with pytest.raises(StateError, match="not in flight"):
            await store.flush()
        await store.flush()  # reported once, then forgotten
        c = await store.task_started(run.run_id, "C", agent="fake")
        await _post_end(store, run.run_id, "C", c)
        await store.finish_run(run.run_id, "error")

        assert store.attempts("proj", task_id="B") == []  # refused, so never written
        (attempt_a,) = store.attempts("proj", task_id="A")
        assert attempt_a.status == "interrupted"  # its result was never recorded
        tasks = {t.task_id: t.status for t in store.snapshot("proj").tasks}
        assert tasks == {"A": "pending", "B": "pending", "C": "completed"}


async def test_finish_run_reports_a_failed_result_after_ending_the_run(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("proj")
        a = await store.task_started(run.run_id, "A")
        await _post_end(store, run.run_id, "A", a + 1)
        with pytest.raises(StateError, match="not in flight"):
            await store.finish_run(run.run_id, "succeeded")
        (record,) = store.runs("proj")
        assert record.status == "succeeded"  # what the caller said; the run did end
        again = await store.begin_run("proj")  # and its lock was released
        await store.finish_run(again.run_id)


def test_close_commits_what_was_queued_and_reports_a_failure(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = StateStore.open(db)

    async def queue_results() -> None:
        run = await store.begin_run("proj")
        ids = {t: await store.task_started(run.run_id, t) for t in ("A", "B", "C")}
        for tid, attempt in ids.items():  # queued, not awaited...
            await _post_end(store, run.run_id, tid, attempt)
        await _post_end(store, run.run_id, "A", ids["A"], "failed")
        store.close()  # ...and closed at once, from the loop's own thread, without yielding

    with pytest.raises(StateError, match="not in flight"):  # A's second end: it had ended
        asyncio.run(queue_results())
    with StateStore.open(db, readonly=True) as reader:
        tasks = {t.task_id: t.status for t in reader.snapshot("proj").tasks}
        assert tasks == {"A": "completed", "B": "completed", "C": "completed"}
        assert [r.status for r in reader.runs("proj")] == ["interrupted"]  # ended by close
        assert reader.lock_holder("proj") is None


async def test_aclose_commits_what_this_turn_queued(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = StateStore.open(db)
    run = await store.begin_run("proj")
    ids = {f"T{i}": await store.task_started(run.run_id, f"T{i}") for i in range(20)}
    for tid, attempt in ids.items():
        await _post_end(store, run.run_id, tid, attempt)
    await store.aclose()  # close() runs in another thread: what this turn queued goes first
    with StateStore.open(db, readonly=True) as reader:
        assert reader.snapshot("proj").counts == {"completed": 20}


async def test_a_sync_read_sees_what_its_loop_queued_without_waiting() -> None:
    store = StateStore.open(":memory:")  # its reads go through the writer, in order
    try:
        run = await store.begin_run("proj")
        a = await store.task_started(run.run_id, "A")
        await _post_end(store, run.run_id, "A", a)
        assert store.snapshot("proj").counts == {"completed": 1}
    finally:
        await store.aclose()


# -- a recorded run -------------------------------------------------------------------------


def _layers(rng: random.Random, layers: int = 4, width: int = 10) -> list[AgentTask]:
    tasks = []
    for layer in range(layers):
        for i in range(width):
            below = [f"L{layer - 1}x{j}" for j in range(width)] if layer else []
            deps = sorted(rng.sample(below, rng.randint(1, 3))) if below else []
            tasks.append(AgentTask(f"L{layer}x{i}", f"task {layer}.{i}", "Go.", dependencies=deps))
    return tasks


async def test_a_dependents_start_is_committed_after_its_dependencys_result(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    tasks = _layers(random.Random(5))
    deps = {t.task_id: t.dependencies for t in tasks}
    late: list[str] = []

    def reply(messages: list[Message]) -> str:
        # When a call goes out, another connection must see every dependency completed.
        tid = _task_of(messages)
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        status = dict(conn.execute("SELECT task_id, status FROM tasks"))
        conn.close()
        late.extend(f"{tid} <- {d}" for d in deps[tid] if status[d] != "completed")
        return f"out {tid}"

    async with StateStore.open(db) as store:
        assert await _run(store, _orchestrator(reply, tasks), concurrency=4) == "succeeded"
    assert late == []
    # In the rows: each task's start comes after the completion of each of its dependencies.
    conn = sqlite3.connect(db)
    events = conn.execute(
        "SELECT t.task_id, e.status, e.id FROM task_events e JOIN tasks t ON t.id = e.task_ref"
    ).fetchall()
    conn.close()
    started = {tid: i for tid, status, i in events if status == "in_progress"}
    completed = {tid: i for tid, status, i in events if status == "completed"}
    assert set(completed) == set(deps)
    for tid, needs in deps.items():
        for dep in needs:
            assert completed[dep] < started[tid], (tid, dep)


async def test_a_result_that_cannot_be_written_stops_the_run_before_a_dependent_calls(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    StateStore.open(db).close()
    _fail_completion_of(db, "A")
    called: list[str] = []

    def reply(messages: list[Message]) -> str:
        called.append(_task_of(messages))
        return "ok"

    tasks = [
        AgentTask("A", "first", "Do A."),
        AgentTask("B", "after A", "Do B.", dependencies=["A"]),
        *(AgentTask(f"X{i}", "apart", "Do X.") for i in range(6)),
    ]
    async with StateStore.open(db) as store:
        with pytest.raises(StateError, match=r"disk refused the write \(test\)"):
            await _run(store, _orchestrator(reply, tasks), concurrency=2)
        assert "A" in called
        assert "B" not in called  # its dependency's result was never recorded
        assert store.attempts("proj", task_id="B") == []
        (attempt,) = store.attempts("proj", task_id="A")
        assert attempt.status == "interrupted"
        assert [r.status for r in store.runs("proj")] == ["error"]
        assert "A" not in store.succeeded_tasks("proj")


async def test_the_last_result_failing_fails_the_run_itself(tmp_path: Path) -> None:
    """No write waits after the last result: the run's end (``run_finished``) reports it."""
    db = tmp_path / "state.db"
    StateStore.open(db).close()
    _fail_completion_of(db, "A")
    async with StateStore.open(db) as store:
        orchestrator = _orchestrator("ok", [AgentTask("A", "only", "Do A.")])
        run = await store.begin_run(orchestrator.name)
        observer = StoreObserver(store, run.run_id)
        await observer.define(orchestrator)
        orchestrator.add_observer(observer)
        try:
            with pytest.raises(StateError, match=r"disk refused the write \(test\)"):
                await orchestrator.run(max_concurrency=1)
        finally:
            await orchestrator.aclose()
        await store.finish_run(run.run_id, "error")  # reported already: nothing to raise
        assert store.snapshot("proj").counts == {"pending": 1}


def test_writer_close_commits_what_was_posted(tmp_path: Path) -> None:
    """Posted writes still waiting for their loop's hand-over are committed by close()."""
    db = tmp_path / "plain.db"
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t(x)")
    writer = Writer(conn, db)

    async def post_and_close() -> None:
        for i in range(5):
            writer.post(lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)))
        writer.close()  # same turn of the loop: nothing was handed over yet

    asyncio.run(post_and_close())
    check = sqlite3.connect(db)
    assert check.execute("SELECT x FROM t ORDER BY rowid").fetchall() == [(i,) for i in range(5)]
    check.close()


# -- checkpoints ----------------------------------------------------------------------------


async def test_checkpoints_keep_the_wal_bounded_and_fill_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    wal = Path(f"{db}-wal")
    tasks = [AgentTask(f"T{i:04d}", f"task {i}", "Go.") for i in range(3000)]
    async with StateStore.open(db) as store:
        empty = _size(db)
        assert await _run(store, _orchestrator("ok", tasks), concurrency=8) == "succeeded"
        page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
        # About 4,000 pages went through the WAL (as many as it would hold without the
        # checkpoints); it started over after each 1,000 (SQLite's wal_autocheckpoint).
        assert _size(wal) < 1200 * (page + 24)
        assert _size(db) > empty + 100 * page  # checkpoints copied them into the file
    with StateStore.open(db, readonly=True) as reader:
        assert reader.snapshot("proj").counts == {"completed": 3000}


async def test_the_wal_stays_bounded_throughout_a_run(tmp_path: Path) -> None:
    """Not only at the end: SQLite checkpoints in the writer's own commits, so the WAL never
    grows much past 1,000 pages, however fast the run writes (sampled all along)."""
    db = tmp_path / "state.db"
    wal = Path(f"{db}-wal")
    tasks = [AgentTask(f"T{i:04d}", f"task {i}", "Go.") for i in range(3000)]
    sizes: list[int] = []

    async def watch() -> None:
        while True:
            sizes.append(_size(wal))  # (WAL mode: the file is there while the store is open)
            await asyncio.sleep(0.001)

    async with StateStore.open(db) as store:
        watching = asyncio.create_task(watch())
        try:
            assert await _run(store, _orchestrator("ok", tasks), concurrency=8) == "succeeded"
        finally:
            watching.cancel()
        page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
        assert _wal_starts(db) >= 2  # it started over, more than once
        assert len(sizes) > 10
        assert max(sizes) < 1200 * (page + 24)  # 1,000 pages, and a little


async def test_a_closed_store_leaves_everything_in_the_database_file(tmp_path: Path) -> None:
    """Closed (and no other process having it open), the store folds its WAL into the file:
    ``state.db`` alone is the whole state (to copy, back up or send)."""
    db = tmp_path / "state.db"
    tasks = [AgentTask(f"T{i:04d}", f"task {i}", "Go.") for i in range(150)]
    async with StateStore.open(db) as store:
        assert await _run(store, _orchestrator("ok", tasks), concurrency=8) == "succeeded"
        assert _size(Path(f"{db}-wal")) > 0
    assert f"{db.name}-wal" not in _names(tmp_path)
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    with StateStore.open(copy, readonly=True) as reader:
        assert reader.snapshot("proj").counts == {"completed": 150}


async def test_a_reader_in_another_process_sees_consistent_snapshots_of_a_run(
    tmp_path: Path,
) -> None:
    """A recorded run (results written without waiting; enough of them for SQLite to checkpoint
    the WAL during the run) while another process reads snapshots as fast as it can."""
    db = tmp_path / ".coditect" / "state.db"
    total = 2000
    store = StateStore.open(db)
    empty = _size(db)
    orchestrator = _orchestrator(
        "ok", [AgentTask(f"T{i:04d}", f"task {i}", "Go.") for i in range(total)], latency=0.002
    )
    try:
        run = await store.begin_run(orchestrator.name)
        observer = StoreObserver(store, run.run_id)
        await observer.define(orchestrator)
        orchestrator.add_observer(observer)
        async with ReaderProcess(db, total) as reader:
            summary = await orchestrator.run(max_concurrency=8)
            await store.finish_run(run.run_id, run_status(summary))
        grown = _size(db) - empty  # (before closing: that copies the rest of the WAL)
    finally:
        await orchestrator.aclose()
        await store.aclose()
    assert summary.counts[TaskStatus.COMPLETED.value] == total
    result = reader.result
    assert result["violations"] == [], result
    assert result["final"] == total
    assert result["distinct"] >= 3, result  # it really read while the run was writing
    assert grown > 0  # and checkpoints copied pages into the database file meanwhile

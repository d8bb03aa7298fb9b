"""The run lock: a second live run is refused; a SIGKILLed holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect_core.errors import RunLockedError, StateError
from coditect_core.store import StateStore
from coditect_core.store.lock import RunLock, lock_path_for, pid_alive

pytestmark = pytest.mark.timeout(60)

HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from coditect_core.store import StateStore

    async def main():
        store = StateStore.open(sys.argv[1])
        run = await store.begin_run("proj")
        await store.define_tasks(run.run_id, {"A": "h-a", "B": "h-b"})
        await store.task_started(run.run_id, "A", agent="fake", interface="api")
        print("READY", run.run_id, flush=True)
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A real process holding the run of project "proj", with task A in flight."""
    db = tmp_path / ".coditect" / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            proc.kill()
            raise AssertionError(f"holder did not start: {line!r} {proc.stderr.read()!r}")
        yield proc, db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_second_live_run_is_refused_naming_pid_and_host(holder) -> None:
    proc, db = holder
    with StateStore.open(db) as store:
        assert store.recovered == []  # a live run's attempts are left in flight
        with pytest.raises(RunLockedError) as info:
            await store.begin_run("proj")
        message = str(info.value)
        assert f"PID {proc.pid}" in message
        assert socket.gethostname() in message
        assert "'proj'" in message
        # Another project in the same database is not blocked.
        other = await store.begin_run("other")
        await store.finish_run(other.run_id)
        holder_info = store.lock_holder("proj")
        assert holder_info is not None
        assert holder_info.pid == proc.pid
        # The refused attempt changed nothing: the holder's attempt is still in flight.
        assert [a.status for a in store.attempts("proj")] == ["running"]


async def test_lock_of_a_sigkilled_holder_is_taken_over(holder) -> None:
    proc, db = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert not pid_alive(proc.pid)
    with StateStore.open(db) as store:
        # Opening marks what the dead run left in flight, taking its lock over to do so.
        (recovery,) = store.recovered
        assert recovery.project == "proj"
        assert recovery.interrupted_attempts == 1
        assert f"PID {proc.pid}" in (recovery.previous_holder or "")
        assert store.lock_holder("proj") is None  # the dead PID no longer counts
        (attempt,) = store.attempts("proj", task_id="A")
        assert attempt.status == "interrupted"
        assert attempt.finished_at is not None
        runs = store.runs("proj")
        assert [r.status for r in runs] == ["interrupted"]
        assert runs[0].pid == proc.pid
        tasks = {t.task_id: t.status for t in store.snapshot("proj").tasks}
        assert tasks == {"A": "pending", "B": "pending"}
        statuses = [e.status for e in store.task_history("proj", "A")]
        assert statuses == ["pending", "in_progress", "pending"]
        run = await store.begin_run("proj")
        assert run.interrupted_attempts == 0
        assert run.took_over_from is None
        await store.finish_run(run.run_id)
    with StateStore.open(db) as again:
        assert again.recovered == []


async def test_begin_run_takes_over_from_a_holder_that_died_after_open(holder) -> None:
    proc, db = holder
    with StateStore.open(db) as store:
        assert store.recovered == []
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        run = await store.begin_run("proj")
        assert f"PID {proc.pid}" in (run.took_over_from or "")
        assert run.interrupted_attempts == 1
        assert [r.status for r in store.runs("proj")] == ["interrupted", "running"]
        await store.finish_run(run.run_id)


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    path = lock_path_for(tmp_path / "state.db", "proj")
    first, second = RunLock(path, "proj"), RunLock(path, "proj")
    assert first.acquire(run_id=1) is None
    with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
        second.acquire()
    with pytest.raises(RunLockedError, match="already holds"):
        first.acquire()
    first.release()
    assert second.acquire() is None  # a clean release leaves no previous holder behind
    second.release()
    assert path.read_bytes() == b""


def test_lock_files_are_per_project_and_private(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    a, b = lock_path_for(db, "proj"), lock_path_for(db, "proj/../etc")
    assert a != b
    assert a.parent == b.parent == tmp_path
    lock = RunLock(b, "proj/../etc")
    lock.acquire()
    assert os.stat(b).st_mode & 0o777 == 0o600
    lock.release()


def test_lock_in_an_unwritable_place_is_a_state_error(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "missing-dir" / "x.lock", "proj")
    with pytest.raises(StateError, match="cannot open the run lock"):
        lock.acquire()

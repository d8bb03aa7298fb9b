"""Readers in another process see consistent snapshots while a run writes."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from coditect_core.store import StateStore
from coditect_core.store.records import AttemptOutcome

pytestmark = pytest.mark.timeout(120)

READER = textwrap.dedent(
    """
    import json, sys, time
    from coditect_core.store import StateStore

    db, total = sys.argv[1], int(sys.argv[2])
    while True:  # wait for the writer's first run
        try:
            store = StateStore.open(db, readonly=True)
            if store.runs("proj"):
                break
            store.close()
        except Exception:
            pass
        time.sleep(0.01)
    print("READING", flush=True)
    snapshots, violations, seen, last = 0, [], set(), -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snap = store.snapshot("proj")
        snapshots += 1
        counts = snap.counts
        done = counts.get("completed", 0)
        running = counts.get("in_progress", 0)
        succeeded = sum(1 for t in snap.tasks if t.succeeded_hash is not None)
        if len(snap.in_flight) != running:
            violations.append(f"{len(snap.in_flight)} attempts in flight, {running} tasks")
        if succeeded != done:
            violations.append(f"{succeeded} successes recorded, {done} tasks completed")
        if done < last:
            violations.append(f"completed went back from {last} to {done}")
        last = done
        seen.add(done)
        if done == total:
            break
    print(json.dumps({"snapshots": snapshots, "violations": violations[:5],
                      "distinct": len(seen), "final": last}), flush=True)
    """
)


class ReaderProcess:
    """:data:`READER` in a process of its own, reading ``db`` until ``total`` tasks completed.

    ``async with ReaderProcess(db, total) as reader:`` returns once it reads; write inside the
    block; after it, ``reader.result`` is what it saw (its last JSON line). Killed on failure.
    """

    def __init__(self, db: Path, total: int) -> None:
        self.db, self.total = db, total
        self.result: dict[str, object] = {}

    async def __aenter__(self) -> ReaderProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            READER,
            str(self.db),
            str(self.total),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        except BaseException:
            await self._kill()
            raise
        assert line.strip() == b"READING"
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            await self._kill()
            return
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), 90)
        finally:
            await self._kill()
        assert self.proc.returncode == 0, err.decode()
        self.result = json.loads(out.decode().strip().splitlines()[-1])

    async def _kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_reader_in_another_process_sees_consistent_snapshots(tmp_path: Path) -> None:
    db = tmp_path / ".coditect" / "state.db"
    total = 600
    store = StateStore.open(db)
    try:
        run = await store.begin_run("proj")
        ids = [f"T{i:04d}" for i in range(total)]
        await store.define_tasks(run.run_id, {t: f"h-{t}" for t in ids})
        async with ReaderProcess(db, total) as reader:
            sem = asyncio.Semaphore(8)

            async def one(tid: str) -> None:
                async with sem:
                    attempt = await store.task_started(run.run_id, tid, agent="fake")
                    await asyncio.sleep(0.001)
                    await store.task_finished(
                        run.run_id,
                        tid,
                        "completed",
                        attempt_id=attempt,
                        attempt=AttemptOutcome("succeeded", output=tid),
                    )

            await asyncio.gather(*(one(t) for t in ids))
            await store.finish_run(run.run_id)
    finally:
        await store.aclose()
    result = reader.result
    print(result)
    assert result["violations"] == [], result
    assert result["final"] == total
    assert result["distinct"] >= 3, result  # it really read while the run was writing
    assert result["snapshots"] >= result["distinct"]

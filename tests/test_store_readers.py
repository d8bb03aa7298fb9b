"""Readers in another process see consistent snapshots while a run writes."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from coditect_core.orchestration.state.records import AttemptOutcome
from coditect_core.orchestration.store import StateStore

pytestmark = pytest.mark.timeout(120)

READER = textwrap.dedent(
    """
    import json, sys, time
    from coditect_core.orchestration.store import StateStore

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


async def test_reader_in_another_process_sees_consistent_snapshots(tmp_path: Path) -> None:
    db = tmp_path / ".coditect" / "state.db"
    total = 600
    store = StateStore.open(db)
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        str(db),
        str(total),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        run = await store.begin_run("proj")
        ids = [f"T{i:04d}" for i in range(total)]
        await store.define_tasks(run.run_id, {t: f"h-{t}" for t in ids})
        assert reader.stdout is not None
        line = await asyncio.wait_for(reader.stdout.readline(), 60)
        assert line.strip() == b"READING"
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
        out, err = await asyncio.wait_for(reader.communicate(), 90)
    finally:
        if reader.returncode is None:
            reader.kill()
            await reader.wait()
        await store.aclose()
    assert reader.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    print(result)
    assert result["violations"] == [], result
    assert result["final"] == total
    assert result["distinct"] >= 3, result  # it really read while the run was writing
    assert result["snapshots"] >= result["distinct"]

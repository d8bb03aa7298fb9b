"""What durability costs a realistic run: the same graph recorded on disk and in memory.

Drives the whole stack: ``ProjectOrchestrator.run`` on a layered graph (:mod:`_layered`: 500
tasks in layers of 25, each after the first layer depending on 1 to 3 tasks of the layer before,
``FakeLlm`` latencies of 50 to 500 ms from a seeded RNG), concurrency 16, every transition
recorded through ``StoreObserver`` into

* ``disk``: a :class:`StateStore` on disk (a fresh file in a temporary directory: WAL,
  ``synchronous=NORMAL``, one writer thread with group commit; each task's start committed
  before its call goes out, its result queued without waiting and committed before anything
  queued after it),
* ``memory``: the same :class:`StateStore` opened in memory (``StateStore.open(":memory:")``:
  the same schema, SQL, writer thread and group commit, no file),

interleaved (alternating which goes first), ``--reps`` times. Prints one JSON line per figure:

* ``ratio`` (the headline): the in-memory makespan over the disk one, i.e. durable throughput
  over in-memory throughput; median of the per-repetition ratios; target >= 0.95;
* ``memory_makespan_s``, ``disk_makespan_s``: the makespans (median, and every repetition),
  with ``ideal_makespan_s``, the graph's longest chain of latencies (a lower bound);
* ``disk_wal_max_bytes``: the largest the ``-wal`` file was seen during the disk runs (sampled
  every 20 ms): SQLite's own ``wal_autocheckpoint`` keeps it bounded.

Each line also carries the 1-minute load average at the end.

    python bench/bench_store.py [--tasks 500] [--reps 5] [--concurrency 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _layered import LayeredTask, layered_graph, layered_orchestrator, makespan_figures
from coditect_core.orchestration import TaskStatus
from coditect_core.store import StateStore
from coditect_core.store.observer import StoreObserver, run_status

KINDS = ("memory", "disk")


def _size(path: Path) -> int:
    """The size of ``path``, 0 while absent (one ``stat``: microseconds, fine on the loop)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _watch_size(path: Path, seen: list[int]) -> None:
    """Append the size of ``path`` every 20 ms until cancelled."""
    while True:
        seen.append(_size(path))
        await asyncio.sleep(0.02)


async def run_once(
    path: str | Path, graph: list[LayeredTask], concurrency: int
) -> tuple[float, int]:
    """The makespan of ``ProjectOrchestrator.run`` alone (the store run is begun before and
    finished after), and the largest WAL seen (0 in memory)."""
    orchestrator = layered_orchestrator(graph, name="bench-store")
    store = StateStore.open(path)
    sizes: list[int] = []
    try:
        run = await store.begin_run(orchestrator.name, options={"max_concurrency": concurrency})
        observer = StoreObserver(store, run.run_id)
        await observer.define(orchestrator)
        orchestrator.add_observer(observer)
        watch = None
        if path != ":memory:":
            watch = asyncio.create_task(_watch_size(Path(f"{path}-wal"), sizes))
        gc.collect()
        started = time.perf_counter()
        summary = await orchestrator.run(max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await store.finish_run(run.run_id, run_status(summary))
        await orchestrator.aclose()
        done = store.snapshot(orchestrator.name).counts.get(TaskStatus.COMPLETED.value, 0)
    finally:
        await store.aclose()
    if summary.counts[TaskStatus.COMPLETED.value] != len(graph) or done != len(graph):
        raise SystemExit(f"not every task completed: {summary.counts}, {done} recorded")
    return elapsed, max(sizes, default=0)


def measure(
    graph: list[LayeredTask], concurrency: int, reps: int
) -> tuple[dict[str, list[float]], int]:
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    wal_max = 0
    for rep in range(reps):
        for kind in KINDS if rep % 2 == 0 else KINDS[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                path = ":memory:" if kind == "memory" else Path(tmp) / ".coditect" / "state.db"
                elapsed, wal = asyncio.run(run_once(path, graph, concurrency))
            times[kind].append(elapsed)
            wal_max = max(wal_max, wal)
    return times, wal_max


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    graph = layered_graph(args.tasks, args.seed)
    times, wal_max = measure(graph, args.concurrency, args.reps)
    common: dict[str, Any] = {
        "bench": "store",
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "reps": args.reps,
        "load_1m": round(os.getloadavg()[0], 2),
    }
    lines: list[dict[str, Any]] = [
        *makespan_figures(graph, times, "memory", "disk"),
        {"figure": "disk_wal_max_bytes", "value": wal_max},
    ]
    for line in lines:
        print(json.dumps({**common, **line}))


if __name__ == "__main__":
    main()

"""What the call journal costs a realistic durable run: the same graph with and without it.

Drives the whole stack as ``bench_store.py`` does: ``ProjectOrchestrator.run`` on a layered
graph (:mod:`_layered`: 500 tasks in layers of 25, each after the first layer depending on 1 to 3
tasks of the layer before, ``FakeLlm`` latencies of 50 to 500 ms from a seeded RNG), concurrency
16, every transition recorded through ``StoreObserver`` into a :class:`StateStore` on disk (a
fresh file: WAL, ``synchronous=NORMAL``, one writer thread with group commit), and

* ``journal``: every request also journaled (``executor.journal = store.run_journal(run)``, as
  ``coditect run`` does: the request's content hash, its messages and prefixes, its answer,
  written by the same writer thread, not waited for),
* ``plain``: no journal (the store as it was before the journal),

interleaved (alternating which goes first), ``--reps`` times. Prints one JSON line per figure:

* ``ratio`` (the headline): the plain makespan over the journal one, i.e. throughput with the
  journal over throughput without; median of the per-repetition ratios; target >= 0.95;
* ``plain_makespan_s``, ``journal_makespan_s``: the makespans (median, and every repetition),
  with ``ideal_makespan_s``, the graph's longest chain of latencies (a lower bound);
* ``journal_bytes``: the size of the database (and its WAL) after a journal run, with
  ``plain_bytes`` the same after a plain one.

Each line also carries the 1-minute load average at the end.

    python bench/bench_journal.py [--tasks 500] [--reps 5] [--concurrency 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
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

KINDS = ("plain", "journal")


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))


async def run_once(
    path: Path, graph: list[LayeredTask], concurrency: int, journal: bool
) -> tuple[float, int]:
    """The makespan of ``ProjectOrchestrator.run`` alone (the store run is begun before and
    finished after), and the bytes of the state afterwards."""
    orchestrator = layered_orchestrator(graph, name="bench-journal")
    store = StateStore.open(path)
    try:
        run = await store.begin_run(orchestrator.name, options={"max_concurrency": concurrency})
        observer = StoreObserver(store, run.run_id)
        await observer.define(orchestrator)
        orchestrator.add_observer(observer)
        if journal:
            orchestrator.executor.journal = await store.run_journal(run.run_id).open()
        gc.collect()
        started = time.perf_counter()
        summary = await orchestrator.run(max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        await store.finish_run(run.run_id, run_status(summary))
        await orchestrator.aclose()
        done = store.snapshot(orchestrator.name).counts.get(TaskStatus.COMPLETED.value, 0)
        calls = store.journal_stats(orchestrator.name).provider_calls
        size = _bytes(path)
    finally:
        await store.aclose()
    if summary.counts[TaskStatus.COMPLETED.value] != len(graph) or done != len(graph):
        raise SystemExit(f"not every task completed: {summary.counts}, {done} recorded")
    if calls != (len(graph) if journal else 0):
        raise SystemExit(f"{calls} requests journaled, expected {len(graph) if journal else 0}")
    return elapsed, size


def measure(
    graph: list[LayeredTask], concurrency: int, reps: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    sizes: dict[str, int] = {}
    for rep in range(reps):
        for kind in KINDS if rep % 2 == 0 else KINDS[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / ".coditect" / "state.db"
                elapsed, size = asyncio.run(run_once(path, graph, concurrency, kind == "journal"))
            times[kind].append(elapsed)
            sizes[kind] = size
    return times, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    graph = layered_graph(args.tasks, args.seed)
    times, sizes = measure(graph, args.concurrency, args.reps)
    common: dict[str, Any] = {
        "bench": "journal",
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "reps": args.reps,
        "load_1m": round(os.getloadavg()[0], 2),
    }
    lines: list[dict[str, Any]] = [
        *makespan_figures(graph, times, "plain", "journal"),
        {"figure": "journal_bytes", "value": sizes["journal"], "plain_bytes": sizes["plain"]},
    ]
    for line in lines:
        print(json.dumps({**common, **line}))


if __name__ == "__main__":
    main()

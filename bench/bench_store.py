"""What durability costs a run: 2,000 zero-latency tasks recorded on disk, in memory, and nowhere.

Drives the real stack: ``ProjectOrchestrator`` with a ``FakeLlm`` agent (zero latency) on 2,000
independent tasks, its transitions recorded through ``StoreObserver`` into

* ``disk``: a :class:`StateStore` on disk (a fresh file in a temporary directory: WAL,
  ``synchronous=NORMAL``, one writer thread; each task's start committed before its call goes
  out, its result queued without waiting and committed, in order, before anything queued after
  it: a dependent's start, the end of the run; WAL checkpoints from a thread of their own),
* ``memory``: the same :class:`StateStore` opened in memory (``StateStore.open(":memory:")``: the
  same schema, SQL, writer thread and group commit, no file),
* ``null``: the same observer writing into :class:`NullRecorder` (keeps nothing),

in the same process, the three in rotating order, ``--reps`` times per concurrency. Prints one
JSON line per figure, per concurrency:

* ``memory_tasks_per_s``, ``disk_tasks_per_s``, ``null_tasks_per_s``: tasks/s (median);
* ``ratio`` (the headline, the issue's figure): disk over memory tasks/s, median of the
  per-repetition ratios, target >= 0.8: what keeping the record on disk costs a run;
* ``cpu_ratio``: the same in process CPU seconds (both threads), steadier on a shared machine;
* ``ratio_vs_null`` and ``cpu_ratio_vs_null`` (secondary): disk against keeping nothing, i.e.
  what the whole store costs, bookkeeping included.

    python bench/bench_store.py [--tasks 2000] [--reps 5] [--concurrency 4 64 200] [--latency 0]

``--latency`` gives the fake model a latency in seconds (0 by default: the figure the target is
for, where the store's bookkeeping competes with nothing but the orchestrator's own).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskStatus,
)
from coditect_core.store import NullRecorder, StateStore
from coditect_core.store.observer import StoreObserver, run_status


def build(tasks: int, latency: float = 0.0) -> ProjectOrchestrator:
    registry = AgentRegistry(
        [AgentConfig("fake", "custom", provider="fake", provider_options={"latency": latency})]
    )
    orchestrator = ProjectOrchestrator(registry, name="bench-store", default_agent="fake")
    orchestrator.add_tasks(
        AgentTask(f"T{i:05d}", f"task {i}", "Do the thing.") for i in range(tasks)
    )
    return orchestrator


async def run_once(
    recorder: Any, tasks: int, concurrency: int, latency: float = 0.0
) -> tuple[float, float]:
    """Wall and process CPU seconds of ``ProjectOrchestrator.run`` alone (the store run is
    begun before and finished after)."""
    orchestrator = build(tasks, latency)
    run = await recorder.begin_run(orchestrator.name, options={"max_concurrency": concurrency})
    observer = StoreObserver(recorder, run.run_id)
    await observer.define(orchestrator)
    orchestrator.add_observer(observer)
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    summary = await orchestrator.run(max_concurrency=concurrency)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await recorder.finish_run(run.run_id, run_status(summary))
    await orchestrator.aclose()
    if summary.counts[TaskStatus.COMPLETED.value] != tasks:
        raise SystemExit(f"not every task completed: {summary.counts}")
    return elapsed, cpu


KINDS = ("memory", "disk", "null")


async def measure(
    tasks: int, concurrency: int, reps: int, latency: float
) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for rep in range(reps):
        order = KINDS[rep % 3 :] + KINDS[: rep % 3]
        for kind in order:
            if kind == "null":
                out[kind].append(await run_once(NullRecorder(), tasks, concurrency, latency))
                continue
            with tempfile.TemporaryDirectory() as tmp:
                path = ":memory:" if kind == "memory" else Path(tmp) / ".coditect" / "state.db"
                store = StateStore.open(path)
                try:
                    out[kind].append(await run_once(store, tasks, concurrency, latency))
                    done = store.snapshot("bench-store").counts.get("completed", 0)
                finally:
                    await store.aclose()
            if done != tasks:
                raise SystemExit(f"{kind}: the store recorded {done} completed tasks, not {tasks}")
    return out


def _ratio(times: dict[str, list[tuple[float, float]]], num: str, den: str, i: int) -> list[float]:
    """Per repetition: ``num``'s rate over ``den``'s (``i`` 0: wall time, 1: CPU time)."""
    return [d[i] / n[i] for n, d in zip(times[num], times[den], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 64, 200])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    for concurrency in args.concurrency:
        times = asyncio.run(measure(args.tasks, concurrency, args.reps, args.latency))
        common = {
            "bench": "store",
            "tasks": args.tasks,
            "concurrency": concurrency,
            "latency_s": args.latency,
            "reps": args.reps,
        }
        for kind in KINDS:
            rate = args.tasks / statistics.median(t[0] for t in times[kind])
            print(json.dumps({**common, "figure": f"{kind}_tasks_per_s", "value": round(rate, 1)}))
        figures = (
            ("ratio", "disk", "memory", 0, ">= 0.8"),
            ("cpu_ratio", "disk", "memory", 1, None),
            ("ratio_vs_null", "disk", "null", 0, None),
            ("cpu_ratio_vs_null", "disk", "null", 1, None),
        )
        for figure, num, den, i, target in figures:
            ratios = _ratio(times, num, den, i)
            line: dict[str, Any] = {
                **common,
                "figure": figure,
                "value": round(statistics.median(ratios), 3),
            }
            if target:
                line["target"] = target
            line["ratios"] = [round(r, 3) for r in ratios]
            print(json.dumps(line))


if __name__ == "__main__":
    main()

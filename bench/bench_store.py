"""What the durable state store costs a run: 2,000 zero-latency tasks, with the store and without.

Drives the real stack: ``ProjectOrchestrator`` with a ``FakeLlm`` agent (zero latency) on 2,000
independent tasks, its transitions recorded through ``StoreObserver`` into

* ``store``: a :class:`StateStore` on disk (a fresh file in a temporary directory: WAL,
  ``synchronous=NORMAL``, one writer thread, every transition committed before the run goes on),
* ``null``: the same observer writing into :class:`NullRecorder` (keeps nothing),

in the same process, alternating, ``--reps`` times per concurrency. Prints one JSON line per
figure: tasks/s of each (median over the repetitions), the ratio store/null of tasks/s (median
of the per-repetition ratios; target >= 0.8), and, because wall time on a shared machine is
noisy, the same ratio in CPU seconds of the whole process (both threads: the store's writer
thread included), ``cpu_ratio``.

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
from coditect_core.orchestration.state.observer import StoreObserver, run_status
from coditect_core.orchestration.store import NullRecorder, StateStore


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


async def measure(
    tasks: int, concurrency: int, reps: int, latency: float
) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {"null": [], "store": []}
    for rep in range(reps):
        order = ("null", "store") if rep % 2 == 0 else ("store", "null")
        for kind in order:
            with tempfile.TemporaryDirectory() as tmp:
                if kind == "null":
                    out[kind].append(await run_once(NullRecorder(), tasks, concurrency, latency))
                    continue
                store = StateStore.open(Path(tmp) / ".coditect" / "state.db")
                try:
                    out[kind].append(await run_once(store, tasks, concurrency, latency))
                    done = store.snapshot("bench-store").counts.get("completed", 0)
                finally:
                    await store.aclose()
                if done != tasks:
                    raise SystemExit(f"the store recorded {done} completed tasks, not {tasks}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 64, 200])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    for concurrency in args.concurrency:
        times = asyncio.run(measure(args.tasks, concurrency, args.reps, args.latency))
        pairs = list(zip(times["null"], times["store"], strict=True))
        ratios = [n[0] / s[0] for n, s in pairs]
        cpu_ratios = [n[1] / s[1] for n, s in pairs]
        common = {
            "bench": "store",
            "tasks": args.tasks,
            "concurrency": concurrency,
            "latency_s": args.latency,
        }
        for kind in ("null", "store"):
            rate = args.tasks / statistics.median(t[0] for t in times[kind])
            print(json.dumps({**common, "figure": f"{kind}_tasks_per_s", "value": round(rate, 1)}))
        print(
            json.dumps(
                {
                    **common,
                    "figure": "ratio",
                    "value": round(statistics.median(ratios), 3),
                    "target": ">= 0.8",
                    "ratios": [round(r, 3) for r in ratios],
                    "reps": args.reps,
                }
            )
        )
        print(
            json.dumps(
                {
                    **common,
                    "figure": "cpu_ratio",
                    "value": round(statistics.median(cpu_ratios), 3),
                    "ratios": [round(r, 3) for r in cpu_ratios],
                    "reps": args.reps,
                }
            )
        )


if __name__ == "__main__":
    main()

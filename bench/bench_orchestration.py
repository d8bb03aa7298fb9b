"""Scheduling overhead of ``ProjectOrchestrator.run``: measured makespan against the ideal one.

Two graphs on ``FakeLlm`` (through the whole stack: orchestrator, executor, prompts, BaseLlm
pipeline), in one run:

* ``wide``: 10,000 independent tasks, 20 ms latency each, at concurrency 200. Ideal makespan:
  10,000 / 200 x 20 ms = 1.0 s. Target: measured / ideal <= 1.10.
* ``chain``: 1,000 tasks each depending on the previous one, 1 ms latency. Ideal makespan:
  1,000 x 1 ms = 1.0 s. Target: measured / ideal <= 1.30.

    python bench/bench_orchestration.py [--reps 5] [--profile wide|chain]

Prints one JSON line per figure: ``ratio`` (measured / ideal, best of ``--reps`` runs; the
target), its median, ``ratio_gc_untouched`` (the same, with ``gc_threshold=None``: CPython's
default young-generation GC threshold during the run, see ``orchestration/gc_tuning.py``), and
``floor_ratio``: the same shape of waits made with bare ``asyncio.sleep`` calls and nothing else,
in the same run, over the same ideal. The floor is what the event loop and the machine cost
before any of our code runs (timer granularity, a loaded machine); ``ratio`` can hardly beat it.
The fake model keeps no call log (``record_calls=False``): that log is test instrumentation and
would hold all 10,000 prompts. ``--profile`` runs one graph under cProfile instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import statistics
import time
from typing import Any

from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskStatus,
)

CASES: dict[str, dict[str, Any]] = {
    "wide": {"tasks": 10_000, "latency": 0.020, "concurrency": 200, "chain": False, "target": 1.10},
    "chain": {"tasks": 1_000, "latency": 0.001, "concurrency": 4, "chain": True, "target": 1.30},
}


def ideal_makespan(case: dict[str, Any]) -> float:
    if case["chain"]:
        return case["tasks"] * case["latency"]
    waves = -(-case["tasks"] // case["concurrency"])
    return waves * case["latency"]


def build(case: dict[str, Any], **options: Any) -> ProjectOrchestrator:
    registry = AgentRegistry(
        [
            AgentConfig(
                "fake",
                "custom",
                provider="fake",
                # The fake's call log (test instrumentation) would keep all 10,000 prompts.
                provider_options={"latency": case["latency"], "record_calls": False},
            )
        ]
    )
    orchestrator = ProjectOrchestrator(registry, name="bench", default_agent="fake", **options)
    n = case["tasks"]
    orchestrator.add_tasks(
        AgentTask(
            f"T{i:05d}",
            f"task {i}",
            "Do the thing.",
            dependencies=[f"T{i - 1:05d}"] if case["chain"] and i else [],
        )
        for i in range(n)
    )
    return orchestrator


async def floor_once(case: dict[str, Any]) -> float:
    """The same waits as the graph, as bare sleeps: no orchestrator, no executor, no model."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await asyncio.sleep(case["latency"])

    started = time.perf_counter()
    if case["chain"]:
        await worker(case["tasks"])
    else:
        lanes, n = case["concurrency"], case["tasks"]
        await asyncio.gather(*(worker(n // lanes + (i < n % lanes)) for i in range(lanes)))
    return time.perf_counter() - started


async def run_once(case: dict[str, Any], **options: Any) -> float:
    orchestrator = build(case, **options)
    gc.collect()
    started = time.perf_counter()
    summary = await orchestrator.run(max_concurrency=case["concurrency"])
    elapsed = time.perf_counter() - started
    await orchestrator.aclose()
    if summary.counts[TaskStatus.COMPLETED.value] != case["tasks"]:
        raise SystemExit(f"not every task completed: {summary.counts}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(CASES))
    args = parser.parse_args()

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run_once(CASES[args.profile]))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    for name, case in CASES.items():
        ideal = ideal_makespan(case)
        times, floors, untouched = [], [], []
        for _ in range(args.reps):  # interleaved, so that load hits all alike
            floors.append(asyncio.run(floor_once(case)))
            times.append(asyncio.run(run_once(case)))
            untouched.append(asyncio.run(run_once(case, gc_threshold=None)))
        figures = [
            ("ratio", min(times), f"<= {case['target']:.2f}"),
            ("ratio_median", statistics.median(times), None),
            ("ratio_gc_untouched", min(untouched), None),
            ("floor_ratio", min(floors), None),
        ]
        for figure, measured, target in figures:
            print(
                json.dumps(
                    {
                        "bench": "orchestration",
                        "case": name,
                        "figure": figure,
                        "value": round(measured / ideal, 4),
                        "target": target,
                        "measured_s": round(measured, 4),
                        "ideal_s": ideal,
                        "tasks": case["tasks"],
                        "latency_s": case["latency"],
                        "concurrency": case["concurrency"],
                        "reps": args.reps,
                    }
                )
            )


if __name__ == "__main__":
    main()

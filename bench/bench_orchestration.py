"""What the orchestrator costs a realistic run: its makespan against the best possible one, and its
own CPU per task.

The graph (``bench/_layered.py``): 500 tasks in layers, each task after the first layer depending
on 1 to 3 tasks of the layer before, model latencies of 50 to 500 ms drawn from a seeded RNG
(``FakeLlm`` agents, one per latency). It runs through the whole stack, as ``coditect run`` runs
it: a project file on disk, :class:`ProjectSession` (file, resume plan, store), the orchestrator,
the executor and its request pipeline, the durable state in a fresh ``.coditect/state.db``, at
concurrency 16.

Figures, one JSON line each:

* ``ratio`` (the target, <= 1.10): makespan / max(critical path, total work / concurrency), the
  median over ``--reps`` runs. The denominator is a lower bound no schedule can beat; a greedy
  schedule of a layered graph usually cannot reach it either, so the same graph is also run with
  nothing but ``asyncio`` (one coroutine per task awaiting its dependencies, a semaphore of 16,
  ``asyncio.sleep`` for the model), and its ratio is ``floor_ratio``: what the shape of the graph
  and the event loop cost before any of our code.
* ``own_cpu_ms_per_task`` (the target, <= 1 ms): process CPU seconds of a run (every thread: the
  store's writer included) minus those of the bare ``asyncio`` run of the same graph, per task.
  ``cpu_ms_per_task`` is the run's own total.

    python bench/bench_orchestration.py [--reps 3] [--tasks 500] [--concurrency 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from _layered import LayeredTask, ideal_makespan, layered_graph
from coditect_core.app.session import ProjectSession

BENCH = "orchestration"


def bound(graph: Sequence[LayeredTask], concurrency: int) -> float:
    """max(critical path, total work / concurrency): no schedule finishes sooner."""
    work = sum(task.latency_s for task in graph)
    return max(ideal_makespan(graph), work / concurrency)


def write_project(graph: Sequence[LayeredTask], folder: Path, concurrency: int) -> Path:
    """The graph as a project file: one fake agent per latency."""
    agents = {
        f"fake-{round(latency * 1000)}ms": {
            "type": "custom",
            "provider": "fake",
            "options": {"latency": latency, "record_calls": False},
        }
        for latency in sorted({task.latency_s for task in graph})
    }
    spec = {
        "project": "bench-orchestration",
        "defaults": {"max_concurrency": concurrency},
        "agents": agents,
        "tasks": [
            {
                "id": task.task_id,
                "title": f"Task {task.task_id}",
                "description": "Do it.",
                "agent": f"fake-{round(task.latency_s * 1000)}ms",
                **({"dependencies": task.dependencies} if task.dependencies else {}),
            }
            for task in graph
        ],
    }
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


async def run_stack(path: Path) -> tuple[float, float]:
    """One run through the whole stack: (makespan s, process CPU s)."""
    session = ProjectSession.open(path)
    try:
        cpu, start = time.process_time(), time.perf_counter()
        outcome = await session.run()
        makespan, used = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await session.aclose()
    counts = outcome.summary.counts
    if counts["completed"] != len(session.orchestrator.tasks):
        raise SystemExit(f"the run did not complete every task: {counts}")
    return makespan, used


async def run_floor(graph: Sequence[LayeredTask], concurrency: int) -> tuple[float, float]:
    """The same graph with nothing but asyncio: (makespan s, process CPU s)."""
    done = {task.task_id: asyncio.Event() for task in graph}
    slots = asyncio.Semaphore(concurrency)

    async def one(task: LayeredTask) -> None:
        for dep in task.dependencies:
            await done[dep].wait()
        async with slots:
            await asyncio.sleep(task.latency_s)
        done[task.task_id].set()

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(task) for task in graph))
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    graph = layered_graph(args.tasks, seed=args.seed)
    best = bound(graph, args.concurrency)
    runs: list[tuple[float, float]] = []
    floors: list[tuple[float, float]] = []
    for _ in range(args.reps):  # interleaved: both sides see the same machine
        with tempfile.TemporaryDirectory() as folder:
            path = write_project(graph, Path(folder), args.concurrency)
            runs.append(asyncio.run(run_stack(path)))
        floors.append(asyncio.run(run_floor(graph, args.concurrency)))

    makespan = statistics.median(m for m, _ in runs)
    floor = statistics.median(m for m, _ in floors)
    cpu = statistics.median(c for _, c in runs)
    floor_cpu = statistics.median(c for _, c in floors)
    common: dict[str, Any] = {
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "reps": args.reps,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    figures = [
        {
            "figure": "ratio",
            "value": round(makespan / best, 4),
            "target": "<= 1.10",
            "makespan_s": round(makespan, 3),
            "bound_s": round(best, 3),
            "critical_path_s": round(ideal_makespan(graph), 3),
            "work_per_slot_s": round(sum(t.latency_s for t in graph) / args.concurrency, 3),
            "per_rep": [round(m / best, 4) for m, _ in runs],
        },
        {
            "figure": "floor_ratio",
            "value": round(floor / best, 4),
            "makespan_s": round(floor, 3),
            "per_rep": [round(m / best, 4) for m, _ in floors],
        },
        {
            "figure": "own_cpu_ms_per_task",
            "value": round((cpu - floor_cpu) / args.tasks * 1000, 3),
            "target": "<= 1.0",
        },
        {"figure": "cpu_ms_per_task", "value": round(cpu / args.tasks * 1000, 3)},
    ]
    for figure in figures:
        print(json.dumps({"bench": BENCH, **figure, **common}))


if __name__ == "__main__":
    main()

"""Overhead per task of the Ray runner against the local runner, on 50 ms ``FakeLlm`` tasks.

The same graphs run through the whole stack (orchestrator, executor, retries, prompts), once
with the local runner and once with :class:`RayRunner` on a local Ray started here
(``num_cpus=2``, no dashboard), interleaved round by round, in one run:

* ``chain``: tasks each depending on the previous one, at concurrency 1: every task pays the
  whole hop (submit, schedule, worker, result) on the critical path;
* ``wide``: independent tasks at concurrency 2 (the cluster's CPUs; a request holds one CPU).

The figure is ``overhead_ms_per_task = (ray_makespan - local_makespan) / tasks * concurrency``:
the extra time one task's slot is held. Each run starts its runner first, as ``ProjectSession``
does (for Ray: the warm-up of the workers, reported once as ``warm_up_s``, outside the
makespan). One warm-up run on Ray comes first (it starts the worker
processes and imports our code there); ``ray_init_s`` and ``first_call_s`` report those one-off
costs. ``floor_ms_per_task`` is Ray's own share, measured in the same rounds: the same shape of
work as bare Ray tasks that only sleep the latency, against bare ``asyncio.sleep`` calls.

    python bench/bench_ray_overhead.py [--tasks 60] [--rounds 3] [--latency 0.05]

Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from coditect_core.orchestration.runners import LocalRunner, Runner
from coditect_core.orchestration.runners.ray import RayRunner

TARGET_MS = 15.0  # per task, on this 2-core machine


def build(tasks: int, latency: float, chain: bool, runner: Runner) -> ProjectOrchestrator:
    registry = AgentRegistry(
        [AgentConfig("fake", "custom", provider="fake", provider_options={"latency": latency})]
    )
    orch = ProjectOrchestrator(registry, runner=runner)
    orch.add_tasks(
        AgentTask(
            f"T{i}",
            f"task {i}",
            agent="fake",
            dependencies=[f"T{i - 1}"] if chain and i else [],
        )
        for i in range(tasks)
    )
    return orch


async def makespan(
    tasks: int, latency: float, chain: bool, concurrency: int, runner: Runner
) -> float:
    orch = build(tasks, latency, chain, runner)
    await runner.start(orch.executor)  # as ProjectSession does before a run (Ray: warm-up)
    started = time.perf_counter()
    summary = await orch.run(max_concurrency=concurrency)
    took = time.perf_counter() - started
    await orch.executor.aclose()
    done = summary.counts[TaskStatus.COMPLETED.value]
    if done != tasks:
        raise RuntimeError(f"only {done} of {tasks} tasks completed: {summary.counts}")
    return took


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


async def bare(tasks: int, latency: float, concurrency: int, remote: Any) -> tuple[float, float]:
    """(bare asyncio makespan, bare Ray makespan) of ``tasks`` sleeps, ``concurrency`` at a time."""

    async def run(one: Any) -> float:
        started = time.perf_counter()
        for _ in range(0, tasks, concurrency):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - started

    return await run(lambda: asyncio.sleep(latency)), await run(lambda: remote.remote(latency))


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "ray_overhead", **fields}), flush=True)


async def main(args: argparse.Namespace) -> None:
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    emit(figure="ray_init_s", value=round(time.perf_counter() - started, 2), target="info")
    local, remote = LocalRunner(), RayRunner()
    sleeper = ray.remote(max_retries=0)(_sleep)
    first = time.perf_counter()
    await makespan(1, args.latency, False, 1, remote)
    emit(figure="first_call_s", value=round(time.perf_counter() - first, 3), target="info")
    await makespan(8, args.latency, False, 2, remote)  # both workers started and warm
    warm = time.perf_counter()
    await remote.start(build(1, args.latency, False, remote).executor)
    emit(figure="warm_up_s", value=round(time.perf_counter() - warm, 3), target="info")
    cases = {"chain": (True, 1), "wide": (False, 2)}
    for name, (chain, concurrency) in cases.items():
        times: dict[str, list[float]] = {"local": [], "ray": []}
        floors: list[float] = []
        for i in range(args.rounds):
            asleep, ray_sleep = await bare(args.tasks, args.latency, concurrency, sleeper)
            floors.append((ray_sleep - asleep) / args.tasks * concurrency * 1000)
            order = [("local", local), ("ray", remote)]
            for side, runner in order if i % 2 == 0 else reversed(order):
                times[side].append(
                    await makespan(args.tasks, args.latency, chain, concurrency, runner)
                )
        overheads = [
            (r - lo) / args.tasks * concurrency * 1000
            for lo, r in zip(times["local"], times["ray"], strict=True)
        ]
        emit(
            figure="overhead_ms_per_task",
            case=name,
            value=round(statistics.median(overheads), 2),
            target=f"<= {TARGET_MS:g}",
            best=round(min(overheads), 2),
            tasks=args.tasks,
            concurrency=concurrency,
            latency_ms=args.latency * 1000,
            floor_ms_per_task=round(statistics.median(floors), 2),
            local_s=[round(t, 3) for t in times["local"]],
            ray_s=[round(t, 3) for t in times["ray"]],
            load=os.getloadavg()[0],
        )
    await remote.aclose()
    ray.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    asyncio.run(main(parser.parse_args()))

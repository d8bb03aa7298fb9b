"""The orchestration bench's realistic run, on one machine and on a two-node Ray cluster.

The graph and its project file are the orchestration bench's (``bench/_layered.py`` through
``bench_orchestration.write_project``): 500 tasks in layers, each task after the first layer
depending on 1 to 3 tasks of the layer before, ``FakeLlm`` latencies of 50 to 500 ms drawn from a
seeded RNG, run through the whole stack as ``coditect run`` runs it (``ProjectSession``: file,
resume plan, state in a fresh ``.coditect/state.db``) at concurrency 16. Each repetition runs it
twice, alternating which goes first: with the local runner, and with ``--ray-address`` on a
cluster of two nodes on this machine started as the README says (``tests/support/ray_nodes.py``:
``ray start --head``, ``ray start --address``, token authentication; 8 logical CPUs per node, so
that each node keeps the 8 worker processes its share of 16 requests needs: Ray keeps as many
idle workers as a node has CPUs). This process is the driver, with ``RAY_AUTH_MODE=token`` and
the cluster's ``RAY_AUTH_TOKEN``.

The makespan is ``session.run()`` after the runner has started: for the cluster, connected and
its workers warmed up, as ``coditect run`` does before the first task; that start is reported
apart (``start_s``). Figures, one JSON line each:

* ``ratio`` (the target, <= 1.15): the cluster's median makespan over the local one's, and each
  side over max(critical path, total work / 16), the bound no schedule beats.
* ``start_s``: the cluster runner's start (connect, warm-up), median.

    python bench/bench_ray_cluster.py [--reps 3] [--tasks 500] [--concurrency 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _layered import ideal_makespan, layered_graph
from bench_orchestration import bound, write_project
from coditect_core.app.session import ProjectSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from ray_nodes import RayNodes  # test support: nodes started the README's way

BENCH = "ray_cluster"
CPUS_PER_NODE = 8


async def run_once(path: Path, address: str | None) -> tuple[float, float]:
    """One run: (makespan s, runner start s). ``address``: on that cluster, else locally."""
    session = ProjectSession.open(path, ray_address=address)
    try:
        started = time.perf_counter()
        await session.orchestrator.runner.start(session.orchestrator.executor)
        ready = time.perf_counter()
        outcome = await session.run()
        makespan = time.perf_counter() - ready
    finally:
        await session.aclose()
    counts = outcome.summary.counts
    if counts["completed"] != len(session.orchestrator.tasks):
        raise SystemExit(f"the run did not complete every task: {counts}")
    return makespan, ready - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    graph = layered_graph(args.tasks, seed=args.seed)
    best = bound(graph, args.concurrency)
    load_before = os.getloadavg()[0]
    local: list[float] = []
    cluster: list[float] = []
    starts: list[float] = []
    with RayNodes(cpus_per_node=CPUS_PER_NODE) as nodes:
        nodes.start_head()
        nodes.add_node()
        os.environ.update(nodes.driver_env())  # this process is the driver: the README's way
        for rep in range(args.reps):
            order = ("local", "cluster") if rep % 2 == 0 else ("cluster", "local")
            for side in order:
                with tempfile.TemporaryDirectory() as folder:
                    path = write_project(graph, Path(folder), args.concurrency)
                    address = nodes.address if side == "cluster" else None
                    makespan, start = asyncio.run(run_once(path, address))
                (cluster if side == "cluster" else local).append(makespan)
                if side == "cluster":
                    starts.append(start)
    common: dict[str, Any] = {
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "reps": args.reps,
        "nodes": 2,
        "cpus_per_node": CPUS_PER_NODE,
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "machine_cpus": os.cpu_count(),
    }
    local_s, cluster_s = statistics.median(local), statistics.median(cluster)
    figures = [
        {
            "figure": "ratio",
            "value": round(cluster_s / local_s, 4),
            "target": "<= 1.15",
            "local_s": round(local_s, 3),
            "cluster_s": round(cluster_s, 3),
            "local_per_rep": [round(m, 3) for m in local],
            "cluster_per_rep": [round(m, 3) for m in cluster],
            "bound_s": round(best, 3),
            "critical_path_s": round(ideal_makespan(graph), 3),
            "local_over_bound": round(local_s / best, 4),
            "cluster_over_bound": round(cluster_s / best, 4),
        },
        {
            "figure": "start_s",
            "value": round(statistics.median(starts), 3),
            "target": "info",
            "per_rep": [round(s, 3) for s in starts],
        },
    ]
    for figure in figures:
        print(json.dumps({"bench": BENCH, **figure, **common}))


if __name__ == "__main__":
    main()

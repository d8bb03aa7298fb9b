"""A realistic task graph for the benchmarks: tasks in layers, each depending on the layer before.

:func:`layered_graph` draws, from a seeded RNG, ``n_tasks`` tasks in layers of ``width``; every
task after the first layer depends on 1 to 3 tasks of the layer before, and every task has a
model latency between ``min_latency_s`` and ``max_latency_s`` (in steps of ``step_s``, so that a
benchmark can give each distinct latency a fake agent of its own: ``FakeLlm`` has one latency
per instance). :func:`layered_orchestrator` builds a :class:`ProjectOrchestrator` that runs such
a graph on ``FakeLlm`` agents, one agent per latency.

    graph = layered_graph(500, seed=1)       # [(task_id, dependencies, latency_s), ...]
    orchestrator = layered_orchestrator(graph, name="bench")
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask, ProjectOrchestrator

__all__ = [
    "LayeredTask",
    "ideal_makespan",
    "layered_graph",
    "layered_orchestrator",
    "makespan_figures",
]


class LayeredTask(NamedTuple):
    task_id: str
    dependencies: list[str]
    latency_s: float


def layered_graph(
    n_tasks: int,
    seed: int,
    *,
    width: int = 25,
    min_latency_s: float = 0.05,
    max_latency_s: float = 0.5,
    step_s: float = 0.01,
) -> list[LayeredTask]:
    """``n_tasks`` tasks in layers of ``width`` (the last may be shorter), in layer order."""
    rng = random.Random(seed)
    steps = round((max_latency_s - min_latency_s) / step_s)
    tasks: list[LayeredTask] = []
    below: list[str] = []
    for layer in range(-(-n_tasks // width)):
        here = [f"L{layer:03d}-{i:03d}" for i in range(min(width, n_tasks - layer * width))]
        for task_id in here:
            deps = sorted(rng.sample(below, rng.randint(1, min(3, len(below))))) if below else []
            latency = round(min_latency_s + step_s * rng.randint(0, steps), 6)
            tasks.append(LayeredTask(task_id, deps, latency))
        below = here
    return tasks


def ideal_makespan(graph: Sequence[LayeredTask]) -> float:
    """The longest chain of latencies: the makespan with unbounded concurrency and free
    bookkeeping (a lower bound for any run)."""
    finish: dict[str, float] = {}
    for task in graph:  # in layer order: dependencies come first
        finish[task.task_id] = task.latency_s + max(
            (finish[d] for d in task.dependencies), default=0.0
        )
    return max(finish.values(), default=0.0)


def _agent(latency_s: float) -> str:
    return f"fake-{round(latency_s * 1000)}ms"


def layered_orchestrator(
    graph: Sequence[LayeredTask], *, name: str = "bench-layered"
) -> ProjectOrchestrator:
    """A :class:`ProjectOrchestrator` with ``graph``'s tasks, each on a ``FakeLlm`` agent with
    its latency (one agent per distinct latency; the fakes keep no call log)."""
    latencies = sorted({task.latency_s for task in graph})
    registry = AgentRegistry(
        [
            AgentConfig(
                _agent(latency),
                "custom",
                provider="fake",
                provider_options={"latency": latency, "record_calls": False},
            )
            for latency in latencies
        ]
    )
    orchestrator = ProjectOrchestrator(registry, name=name)
    orchestrator.add_tasks(
        AgentTask(
            task.task_id,
            f"task {task.task_id}",
            "Do the thing.",
            agent=_agent(task.latency_s),
            dependencies=list(task.dependencies),
        )
        for task in graph
    )
    return orchestrator


def makespan_figures(
    graph: Sequence[LayeredTask], times: Mapping[str, list[float]], over: str, under: str
) -> list[dict[str, Any]]:
    """The figures of a benchmark that ran ``graph`` several ways (``times``: each way's
    makespans, one per repetition, paired): the median ratio of ``over``'s makespan to
    ``under``'s (target >= 0.95), then each way's median makespan beside the ideal one."""
    ratios = [a / b for a, b in zip(times[over], times[under], strict=True)]
    return [
        {
            "figure": "ratio",
            "value": round(statistics.median(ratios), 4),
            "target": ">= 0.95",
            "ratios": [round(r, 4) for r in ratios],
        },
        *(
            {
                "figure": f"{kind}_makespan_s",
                "value": round(statistics.median(runs), 3),
                "runs": [round(t, 3) for t in runs],
                "ideal_makespan_s": round(ideal_makespan(graph), 3),
            }
            for kind, runs in times.items()
        ),
    ]

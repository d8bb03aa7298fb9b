"""Per-task questions about a project file stay linear (issue 19, part 5).

``ProjectFile.agent_of`` rebuilt a dict of every task on each call, and ``agents``, ``doctor``
and ``report`` asked it once per task: 10 s at 8,000 tasks. At 5,000 tasks, quadratic work
takes many seconds here, linear work a small fraction of one. (The 100,000-task figures are in
``bench/bench_commands_scale.py``.)
"""

from __future__ import annotations

import time

import pytest
import yaml

from coditect_core.app.doctor import check_agents
from coditect_core.project import ProjectFile, parse_project_file

pytestmark = pytest.mark.timeout(120)

N = 5_000


@pytest.fixture(scope="module")
def big() -> ProjectFile:
    spec = {
        "project": "scale",
        "defaults": {"agent": "a"},
        "agents": {name: {"type": "custom", "provider": "fake"} for name in ("a", "b", "c")},
        "tasks": [
            {
                "id": f"T{i}",
                "title": f"task {i}",
                **({"agent": "bc"[i % 2]} if i % 3 else {}),
                **({"dependencies": [f"T{i - 1}"]} if i % 10 else {}),
            }
            for i in range(N)
        ],
    }
    return parse_project_file(yaml.safe_dump(spec, sort_keys=False), "scale.yaml")


def test_agent_of_every_task_is_linear(big: ProjectFile) -> None:
    started = time.perf_counter()
    agents = [big.agent_of(tid) for tid in big.task_ids]
    took = time.perf_counter() - started
    assert took < 0.5, f"{took:.2f} s for {N} tasks"
    assert agents[:4] == ["a", "c", "b", "a"]  # T1: c, T2: b, T3: the default
    assert big.agents_of_tasks() == dict(zip(big.task_ids, agents, strict=True))


def test_check_agents_counts_the_tasks_of_each_agent_in_linear_time(big: ProjectFile) -> None:
    started = time.perf_counter()
    _, checks = check_agents(big)
    took = time.perf_counter() - started
    assert took < 3.0, f"{took:.2f} s for {N} tasks"
    tasks = {c.name: c.tasks for c in checks}
    assert {name: len(ids) for name, ids in tasks.items()} == {"a": 1667, "b": 1666, "c": 1667}
    assert tasks["b"][:3] == ["T2", "T4", "T8"]  # file order

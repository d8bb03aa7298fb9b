"""Reading a project file and asking about its tasks stay linear (issue 19, part 5).

``ProjectFile.agent_of`` rebuilt a dict of every task on each call, and ``agents``, ``doctor``
and ``report`` asked it once per task: 10 s at 8,000 tasks. At 5,000 tasks, quadratic work
takes many seconds here, linear work a small fraction of one. (The 100,000-task figures are in
``bench/bench_commands_scale.py``.) A document without aliases is built directly, not by
PyYAML's constructor: it must build exactly what ``yaml.safe_load`` builds.
"""

from __future__ import annotations

import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from coditect_core.app.doctor import check_agents
from coditect_core.errors import ProjectFileError
from coditect_core.project import ProjectFile, parse_project_file
from coditect_core.project._yaml import read_yaml

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


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(ANY_VALUE)
def test_reading_builds_what_safe_load_builds(value: object) -> None:
    """The direct construction of an alias-free document is yaml.safe_load's, exactly."""
    text = yaml.safe_dump({"root": value})
    assert read_yaml("any.yaml", text)[0] == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [true, null, 1.5, 0x1f, 2024-01-02, '3', !!str 4]\nc: {d: ~}\n",
        "base: &b {x: 1, y: 2}\nderived: {<<: *b, y: 3}\nlist: [*b, *b]\n",  # aliases, merge
        "? [complex, key]\n: value\n",
        "2: int key\nfalse: bool key\n",
    ],
)
def test_reading_odd_documents_matches_safe_load(text: str) -> None:
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(ProjectFileError):
            read_yaml("odd.yaml", text)
        return
    assert read_yaml("odd.yaml", text)[0] == expected


def test_a_duplicate_key_is_located_without_aliases_too() -> None:
    text = "agents: {a: {type: local}}\ntasks:\n  - id: T1\n    title: x\n    title: y\n"
    with pytest.raises(ProjectFileError) as caught:
        read_yaml("dup.yaml", text)
    assert caught.value.line == 5
    assert "tasks[0].title: duplicate key 'title'" in str(caught.value)

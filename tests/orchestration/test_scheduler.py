"""Pure graph functions: cycles with their path, validation, orders, ready set, descendants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coditect_core.errors import SchedulingError
from coditect_core.orchestration.scheduler import (
    blocked_by,
    dependents_of,
    descendants,
    find_cycle,
    find_duplicate_ids,
    priority_order,
    ready_tasks,
    topological_order,
    validate_graph,
    validate_tasks,
)
from coditect_core.orchestration.task import AgentTask


def test_find_cycle_returns_its_path() -> None:
    assert find_cycle({"A": ["B"], "B": ["A"]}) == ["A", "B", "A"]
    assert find_cycle({"A": ["A"]}) == ["A", "A"]
    assert find_cycle({"X": [], "A": ["B"], "B": ["C"], "C": ["B"]}) == ["B", "C", "B"]
    assert find_cycle({"A": [], "B": ["A"], "C": ["A", "B"]}) is None
    assert find_cycle({"A": ["missing"]}) is None


def test_find_cycle_handles_a_long_chain_without_recursion() -> None:
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(20_000)}
    assert find_cycle(chain) is None
    chain["t0"] = ["t19999"]
    cycle = find_cycle(chain)
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert len(cycle) == 20_001


def test_validate_graph_messages() -> None:
    with pytest.raises(SchedulingError, match="dependency cycle: A -> B -> C -> A"):
        validate_graph({"A": ["B"], "B": ["C"], "C": ["A"]})
    with pytest.raises(SchedulingError, match="task 'B' depends on unknown task 'Z'"):
        validate_graph({"A": [], "B": ["Z"]})
    assert validate_graph({"B": ["A"], "A": []}) == ["A", "B"]


def test_duplicates() -> None:
    assert find_duplicate_ids(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    with pytest.raises(SchedulingError, match="duplicate task id"):
        validate_tasks([AgentTask("a", "x"), AgentTask("a", "y")])


def test_priority_order_and_ready_set() -> None:
    tasks = [
        AgentTask("low", "t", priority="low"),
        AgentTask("m1", "t"),
        AgentTask("crit", "t", priority="critical", dependencies=["m1"]),
        AgentTask("m2", "t"),
        AgentTask("done", "t", status="completed", priority="high"),
        AgentTask("after_done", "t", dependencies=["done"], priority="high"),
    ]
    assert [t.task_id for t in priority_order(tasks)] == [
        "crit",
        "done",
        "after_done",
        "m1",
        "m2",
        "low",
    ]
    assert [t.task_id for t in ready_tasks(tasks)] == ["after_done", "m1", "m2", "low"]


def test_dependents_and_descendants() -> None:
    deps = {"A": [], "B": ["A", "A"], "C": ["B"], "D": ["A"], "E": []}
    assert dependents_of(deps) == {"A": ["B", "D"], "B": ["C"], "C": [], "D": [], "E": []}
    assert descendants(deps, ["A"]) == {"B", "C", "D"}
    assert descendants(deps, ["E"]) == set()


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(0, 25))
    return {
        f"n{i}": sorted(draw(st.sets(st.sampled_from([f"n{j}" for j in range(i)]), max_size=4)))
        if i
        else []
        for i in range(n)
    }


@given(dags())
def test_topological_order_is_a_valid_order(deps: dict[str, list[str]]) -> None:
    order = topological_order(deps)
    assert sorted(order) == sorted(deps)
    position = {tid: i for i, tid in enumerate(order)}
    for tid, needs in deps.items():
        assert all(position[d] < position[tid] for d in needs)
    assert find_cycle(deps) is None


def test_blocked_by_names_the_dead_tasks_upstream_through_blocked_ones() -> None:
    statuses = {
        "A": "failed",
        "B": "cancelled",
        "OK": "completed",
        "C": "blocked",  # A
        "D": "blocked",  # B, OK
        "E": "blocked",  # C and D: A and B, in the order of statuses
        "F": "pending",
    }
    deps = {"C": ["A"], "D": ["OK", "B"], "E": ["D", "C", "gone"], "F": ["OK"]}
    assert blocked_by(statuses, deps) == {"C": ("A",), "D": ("B",), "E": ("A", "B")}


def test_blocked_by_survives_a_long_chain_and_a_cycle() -> None:
    n = 20_000  # deeper than the recursion limit
    statuses = {"T0": "failed", **{f"T{i}": "blocked" for i in range(1, n)}}
    deps = {f"T{i}": [f"T{i - 1}"] for i in range(1, n)}
    causes = blocked_by(statuses, deps)
    assert len(causes) == n - 1
    assert set(causes.values()) == {("T0",)}
    cyclic = blocked_by({"X": "blocked", "Y": "blocked"}, {"X": ["Y"], "Y": ["X"]})
    assert cyclic == {"X": (), "Y": ()}

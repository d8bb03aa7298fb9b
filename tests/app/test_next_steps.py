"""``next_steps``: the tasks of a finished run sorted by what the user must do; blocked tasks
grouped by the failed or cancelled tasks upstream that block them, through blocked chains."""

from __future__ import annotations

from datetime import UTC, datetime

from coditect_core.app.next_steps import Failure, NextSteps, next_steps
from coditect_core.orchestration.execution_result import ExecutionResult
from coditect_core.orchestration.summary import RunSummary
from coditect_core.orchestration.task import AgentTask, TaskStatus
from coditect_core.reporting import BlockedGroup

S = TaskStatus


def _run(
    graph: dict[str, tuple[list[str], TaskStatus]], finish: dict[str, str] | None = None
) -> NextSteps:
    tasks = {
        tid: AgentTask(task_id=tid, title=tid, dependencies=deps, status=status)
        for tid, (deps, status) in graph.items()
    }
    results = {
        tid: ExecutionResult(
            task_id=tid,
            agent="a",
            error="bad\nthing" if t.status is S.FAILED else None,
            finish_reason=(finish or {}).get(tid, "stop"),
        )
        for tid, t in tasks.items()
        if t.status in (S.FAILED, S.COMPLETED, S.AWAITING_HUMAN)
    }
    now = datetime.now(UTC)
    summary = RunSummary(now, now, 0.0, {tid: t.status for tid, t in tasks.items()})
    return next_steps(tasks, results, summary)


def test_blocked_tasks_are_grouped_by_their_root_causes_through_blocked_chains() -> None:
    steps = _run(
        {
            "A": ([], S.FAILED),
            "B": ([], S.CANCELLED),
            "C": ([], S.COMPLETED),
            "D": (["A"], S.BLOCKED),
            "E": (["D"], S.BLOCKED),  # blocked by D, itself blocked by A: A's group
            "F": (["A", "B"], S.BLOCKED),
            "G": (["E", "B", "C"], S.BLOCKED),  # A (through E, D) and B
            "H": (["B"], S.BLOCKED),
            "W": (["C"], S.AWAITING_HUMAN),
        }
    )
    assert steps.failed == [Failure("A", "a", "bad\nthing")]
    assert steps.blocked == [
        BlockedGroup(["A"], ["D", "E"]),
        BlockedGroup(["A", "B"], ["F", "G"]),
        BlockedGroup(["B"], ["H"]),
    ]
    assert [w.task_id for w in steps.waiting] == ["W"]
    assert steps.not_started == ["B"]
    assert not steps.clean


def test_a_long_blocked_chain_and_truncated_replies() -> None:
    graph = {"T0": ([], S.FAILED)}
    graph.update({f"T{i}": ([f"T{i - 1}"], S.BLOCKED) for i in range(1, 5000)})
    steps = _run(graph)  # no recursion limit on a deep chain
    assert steps.blocked == [BlockedGroup(["T0"], [f"T{i}" for i in range(1, 5000)])]

    done = _run({"A": ([], S.COMPLETED), "B": ([], S.COMPLETED)}, finish={"B": "length"})
    assert done.truncated == ["B"]
    assert done.to_dict()["truncated"] == ["B"]
    assert _run({"A": ([], S.COMPLETED)}).clean

"""What the end of a run means for the user: the tasks that did not simply succeed, grouped.

:func:`next_steps` reads a finished run (its tasks, their results, its summary) and sorts out
what the user must look at: each failed task with its error, the blocked tasks grouped by the
tasks that block them (:func:`~coditect_core.orchestration.scheduler.blocked_by`), the tasks
waiting on a person, the truncated replies, and the tasks the run never reached (a budget stop,
an interruption). It knows no command line and prints nothing: ``cli/run_summary.py`` turns it
into text and commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..llm_abstractions.datatypes import FinishReason
from ..orchestration.execution_result import ExecutionResult
from ..orchestration.scheduler import blocked_by
from ..orchestration.summary import RunSummary
from ..orchestration.task import AgentTask, TaskStatus
from ..reporting import BlockedGroup

__all__ = [
    "Failure",
    "NextSteps",
    "Waiting",
    "is_truncated",
    "next_steps",
]


def is_truncated(result: ExecutionResult | None) -> bool:
    """Whether ``result``'s reply was cut off at its token limit (its finish reason is
    ``length``), as the run's report says it (``truncated``)."""
    return result is not None and result.finish_reason == FinishReason.LENGTH


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed task and its error (as the run recorded it, not yet shown)."""

    task_id: str
    agent: str | None
    error: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A task handed to a person (an interactive agent, or tool calls waiting for approval)."""

    task_id: str
    agent: str | None
    calls: tuple[str, ...] = ()
    """The tool calls waiting for a person's approval, each ``name(arguments)``."""


@dataclass
class NextSteps:
    """The tasks of a run that did not simply succeed, sorted by what the user must do."""

    failed: list[Failure] = field(default_factory=list)
    blocked: list[BlockedGroup] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    """Tasks left pending, in progress or cancelled by the run's end (budget, interruption)."""
    budget_stopped: bool = False

    @property
    def attention(self) -> list[str]:
        """Every task listed above, in no particular order, each once."""
        ids = [f.task_id for f in self.failed]
        ids += [tid for group in self.blocked for tid in group.tasks]
        ids += [w.task_id for w in self.waiting]
        return list(dict.fromkeys([*ids, *self.truncated, *self.not_started]))

    @property
    def clean(self) -> bool:
        """Whether every task simply succeeded."""
        return not self.attention and not self.budget_stopped

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the errors exact: the caller masks them)."""
        return {
            "failed": [
                {"task_id": f.task_id, "agent": f.agent, "error": f.error} for f in self.failed
            ],
            "blocked": [g.to_dict() for g in self.blocked],
            "awaiting_human": [
                {
                    "task_id": w.task_id,
                    "agent": w.agent,
                    **({"pending_approval": list(w.calls)} if w.calls else {}),
                }
                for w in self.waiting
            ],
            "truncated": list(self.truncated),
            "not_started": list(self.not_started),
            "budget_stopped": self.budget_stopped,
        }


def next_steps(
    tasks: Mapping[str, AgentTask],
    results: Mapping[str, ExecutionResult],
    summary: RunSummary,
) -> NextSteps:
    """The tasks of a finished run that need the user, sorted (definition order within each
    kind). ``tasks`` and ``results`` are the orchestrator's after the run."""
    steps = NextSteps(budget_stopped=summary.budget_stopped)
    groups: dict[tuple[str, ...], list[str]] = {}
    culprits = blocked_by(
        {tid: t.status.value for tid, t in tasks.items()},
        {tid: t.dependencies for tid, t in tasks.items()},
    )
    for tid, task in tasks.items():
        result = results.get(tid)
        status = task.status
        agent = (result.agent if result else None) or task.agent
        if status is TaskStatus.FAILED:
            error = (result.error if result else None) or "failed (no error recorded)"
            steps.failed.append(Failure(tid, agent, error))
        elif status is TaskStatus.BLOCKED:
            groups.setdefault(culprits.get(tid, ()), []).append(tid)
        elif status is TaskStatus.AWAITING_HUMAN:
            pending = (result.metadata.get("pending_approval") if result else None) or []
            calls = tuple(f"{c['name']}({c['arguments']})" for c in pending)
            steps.waiting.append(Waiting(tid, agent, calls))
        elif status in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED):
            steps.not_started.append(tid)
        if status is TaskStatus.COMPLETED and is_truncated(result):
            steps.truncated.append(tid)
    steps.blocked = [BlockedGroup(list(by), ids) for by, ids in groups.items()]
    return steps

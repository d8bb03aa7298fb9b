"""How a run ended (``RunSummary``), and an orchestrator's in-memory picture of its project
(``project_report``: what :meth:`ProjectOrchestrator.generate_report` returns)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..llm_abstractions.datatypes import FinishReason
from .execution_result import ExecutionResult
from .spend import Spend
from .task import AgentTask, TaskStatus

__all__ = ["RunSummary", "project_report", "total_usage"]


@dataclass
class RunSummary:
    """How a run ended: every task's status, and whether the run itself was cut short.

    ``stop_reason`` says why a run stopped early: ``"budget"`` (the budget was reached: the
    tasks never started are still PENDING, see :attr:`unstarted`), ``"cancelled"``,
    ``"fail_fast: ..."`` or ``"error"``. ``cost`` is what the run spent
    (:meth:`~.budget.Spend.to_dict`); ``budget`` the limits against it, if there were any.
    """

    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    statuses: dict[str, TaskStatus]
    cancelled: bool = False
    stop_reason: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None

    @property
    def budget_stopped(self) -> bool:
        """Whether the run ended because its budget was reached."""
        return self.stop_reason == "budget"

    @property
    def unstarted(self) -> list[str]:
        """Tasks this run never started (still PENDING), in definition order."""
        return self.ids(TaskStatus.PENDING)

    def ids(self, status: TaskStatus) -> list[str]:
        """Task ids in ``status``, in definition order."""
        return [tid for tid, s in self.statuses.items() if s is status]

    @property
    def counts(self) -> dict[str, int]:
        """Number of tasks per status (every status listed)."""
        tally = Counter(self.statuses.values())
        return {s.value: tally[s] for s in TaskStatus}

    @property
    def ok(self) -> bool:
        """Whether every task is completed."""
        return all(s is TaskStatus.COMPLETED for s in self.statuses.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "counts": self.counts,
            "statuses": {tid: s.value for tid, s in self.statuses.items()},
            "usage": dict(self.usage),
            "cost": dict(self.cost),
            "budget": dict(self.budget) if self.budget is not None else None,
            "unstarted": self.unstarted,
        }


def total_usage(results: Mapping[str, ExecutionResult]) -> dict[str, int]:
    """Token counts summed over ``results``."""
    usages = [r.usage for r in results.values() if r.usage is not None]
    return {
        "prompt_tokens": sum(u.prompt_tokens for u in usages),
        "completion_tokens": sum(u.completion_tokens for u in usages),
        "total_tokens": sum(u.total_tokens for u in usages),
    }


def project_report(
    name: str,
    tasks: Mapping[str, AgentTask],
    results: Mapping[str, ExecutionResult],
    spend: Spend | None = None,
) -> dict[str, Any]:
    """A JSON-ready picture of a project: counts, progress, usage and every task.

    With ``spend`` (a run's), each task it ran gets its ``cost_usd`` over all its attempts
    (``None`` if any was unknown) and ``cost_known_usd``; the others get ``None``.
    """
    total = len(tasks)
    counts = dict.fromkeys((s.value for s in TaskStatus), 0)
    rows = []
    for task in tasks.values():
        counts[task.status.value] += 1
        result = results.get(task.task_id)
        tally = spend.by_task.get(task.task_id) if spend is not None else None
        cost = tally.cost_usd if tally is not None else None
        cost_known = tally.cost_known_usd if tally is not None else None
        rows.append(
            {
                "task_id": task.task_id,
                "title": task.title,
                "status": task.status.value,
                "priority": task.priority.value,
                "phase": str(task.phase) if task.phase is not None else None,
                "dependencies": list(task.dependencies),
                "agent": (result.agent if result else None) or task.agent,
                "model": result.model if result else None,
                "started_at": task.started_at.isoformat() if task.started_at else None,
                "completed_at": task.completed_at.isoformat() if task.completed_at else None,
                "duration_seconds": result.duration_seconds if result else None,
                # The run's one tally (its footer's too) when there is one; a task it did not
                # run (resumed, held) made no attempt in it.
                "attempts": (
                    tally.attempts
                    if tally is not None
                    else (result.attempts if result and spend is None else 0)
                ),
                "usage": result.usage.to_dict() if result and result.usage else None,
                "cost_usd": cost,
                "cost_known_usd": cost_known,
                "cached": result.cached if result else False,
                "error": result.error if result else None,
                "finish_reason": result.finish_reason if result else None,
                "truncated": result is not None and result.finish_reason == FinishReason.LENGTH,
                "handoff_prompt": (
                    result.metadata.get("handoff_prompt")
                    if result and task.status is TaskStatus.AWAITING_HUMAN
                    else None
                ),
                "notes": list(task.notes),
            }
        )
    done = counts[TaskStatus.COMPLETED.value]
    return {
        "project": name,
        "generated_at": datetime.now(UTC).isoformat(),
        "total_tasks": total,
        "status_counts": counts,
        "progress": done / total if total else 1.0,
        "estimated_hours": sum(t.estimated_hours or 0.0 for t in tasks.values()),
        "usage": total_usage(results),
        "tasks": rows,
    }

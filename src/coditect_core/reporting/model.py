"""What a report is made of: plain records of runs, tasks, attempts and agents, with their figures.

Built from a state store by :mod:`.build`; drawn by :mod:`.text` (Markdown, JSON) and
:mod:`.html`. Every figure that sums attempts is a :class:`Figures`. A cost is ``None`` when it
is unknown (no price for the model): sums keep the known part and count the unknown attempts, so
that a partly unknown cost is never shown as a complete one, and never made up as zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "REPORT_FORMAT_VERSION",
    "AgentRow",
    "AttemptRow",
    "Figures",
    "ReportData",
    "RunRow",
    "TaskRow",
    "iso",
]

#: Bumped when the JSON report changes in a way that breaks its readers.
REPORT_FORMAT_VERSION = 1


def iso(ts: float | None) -> str | None:
    """A UNIX time as an ISO 8601 string in UTC (``None`` stays ``None``)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One call of one agent on one task (as the store recorded it).

    ``kind`` is ``first`` (the task's first attempt in the report), ``retry`` (the task tried
    again: a later run, or the same agent again) or ``fallback`` (another agent took over in the
    same run). ``duration_s`` runs to the report's time for an attempt still in flight.
    """

    attempt_id: int
    run_id: int
    task_id: str
    number: int
    kind: str
    agent: str | None
    model: str | None
    interface: str | None
    started_at: float
    finished_at: float | None
    duration_s: float
    status: str
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    cost_usd: float | None
    output: str | None

    @property
    def tokens(self) -> int | None:
        """Input plus output tokens; ``None`` when the attempt reported none."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "run_id": self.run_id,
            "number": self.number,
            "kind": self.kind,
            "agent": self.agent,
            "model": self.model,
            "interface": self.interface,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_seconds": self.duration_s,
            "status": self.status,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_seconds": self.latency_s,
            "cost_usd": self.cost_usd,
            "output_chars": None if self.output is None else len(self.output),
        }


@dataclass(frozen=True, slots=True)
class Figures:
    """Attempts summed: counts, time busy, tokens and cost (see the module for unknown costs)."""

    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    fallbacks: int = 0
    busy_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_known_usd: float = 0.0
    cost_unknown: int = 0

    @classmethod
    def of(cls, attempts: Iterable[AttemptRow]) -> Figures:
        n = ok = bad = retries = fallbacks = unknown = 0
        busy = cost = 0.0
        prompt = completion = 0
        for a in attempts:
            n += 1
            ok += a.status == "succeeded"
            bad += a.status == "failed"
            retries += a.kind == "retry"
            fallbacks += a.kind == "fallback"
            busy += a.duration_s
            prompt += a.prompt_tokens or 0
            completion += a.completion_tokens or 0
            if a.cost_usd is None:
                unknown += 1
            else:
                cost += a.cost_usd
        return cls(n, ok, bad, retries, fallbacks, busy, prompt, completion, cost, unknown)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float | None:
        """The whole cost, or ``None`` if any attempt's cost is unknown. No attempts: 0."""
        return None if self.cost_unknown else self.cost_known_usd

    @property
    def cost_status(self) -> str:
        """``known``, ``partial`` (some attempts unknown) or ``unknown`` (all of them)."""
        if not self.cost_unknown:
            return "known"
        return "unknown" if self.cost_unknown == self.attempts else "partial"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "busy_seconds": self.busy_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "cost_status": self.cost_status,
            "cost_known_usd": self.cost_known_usd,
            "cost_unknown_attempts": self.cost_unknown,
        }


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task: what the project file says of it, where it stands, and its attempts.

    ``defined`` is false for a task the store knows but the project file no longer has.
    ``level`` is its depth in the dependency graph (0: depends on nothing). ``prompt`` is the
    task's own part of the prompt (the outputs of its dependencies are added at run time).
    """

    task_id: str
    title: str
    description: str
    agent: str | None
    priority: str | None
    dependencies: list[str]
    level: int
    status: str
    defined: bool
    attempts: list[AttemptRow]
    figures: Figures
    output: str | None
    error: str | None
    prompt: str | None
    notes: list[tuple[float, str, str]] = field(default_factory=list)
    """The task's status changes in scope: ``(time, status, note)``."""

    @property
    def started_at(self) -> float | None:
        return min((a.started_at for a in self.attempts), default=None)

    @property
    def finished_at(self) -> float | None:
        ends = [a.finished_at for a in self.attempts if a.finished_at is not None]
        return max(ends, default=None)

    @property
    def agents(self) -> list[str]:
        """The agents that made its attempts, in order of first use."""
        return list(dict.fromkeys(a.agent or "?" for a in self.attempts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "title": self.title,
            "status": self.status,
            "agent": self.agent,
            "agents": self.agents,
            "priority": self.priority,
            "dependencies": self.dependencies,
            "level": self.level,
            "defined": self.defined,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "figures": self.figures.to_dict(),
            "error": self.error,
            "output": self.output,
            "attempts": [a.to_dict() for a in self.attempts],
            "history": [
                {"at": iso(at), "status": status, "note": note} for at, status, note in self.notes
            ],
        }


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent's share of the work: every attempt it made."""

    agent: str
    models: list[str]
    tasks: int
    figures: Figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "models": self.models,
            "tasks": self.tasks,
            "figures": self.figures.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run: when, how it ended, its attempts, and how many tasks ended in each status."""

    run_id: int
    started_at: float
    finished_at: float | None
    status: str
    wall_s: float
    figures: Figures
    task_counts: dict[str, int]
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "status": self.status,
            "wall_seconds": self.wall_s,
            "figures": self.figures.to_dict(),
            "task_counts": self.task_counts,
            "options": self.options,
        }


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows. ``run_id`` is the run it is limited to (``None``: all)."""

    project: str
    generated_at: float
    run_id: int | None
    runs: list[RunRow]
    tasks: list[TaskRow]
    agents: list[AgentRow]
    totals: Figures
    status_counts: dict[str, int]

    @property
    def attempts(self) -> list[AttemptRow]:
        """Every attempt in the report, oldest first."""
        return sorted((a for t in self.tasks for a in t.attempts), key=lambda a: a.attempt_id)

    @property
    def wall_s(self) -> float:
        """Time the runs in the report took, added up."""
        return sum(r.wall_s for r in self.runs)

    @property
    def levels(self) -> int:
        return 1 + max((t.level for t in self.tasks), default=-1)

    def task(self, task_id: str) -> TaskRow:
        for row in self.tasks:
            if row.task_id == task_id:
                return row
        raise KeyError(task_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (see :data:`REPORT_FORMAT_VERSION`)."""
        return {
            "format": "coditect-report",
            "version": REPORT_FORMAT_VERSION,
            "project": self.project,
            "generated_at": iso(self.generated_at),
            "run_id": self.run_id,
            "totals": {**self.totals.to_dict(), "wall_seconds": self.wall_s},
            "status_counts": self.status_counts,
            "runs": [r.to_dict() for r in self.runs],
            "agents": [a.to_dict() for a in self.agents],
            "tasks": [t.to_dict() for t in self.tasks],
        }

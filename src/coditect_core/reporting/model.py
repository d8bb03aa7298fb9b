"""The one read model of a project's runs and tasks: plain rows of runs, tasks, attempts and
agents, with their figures.

Built from a state store by :mod:`.build`; read by ``coditect report`` (drawn by :mod:`.text`
and :mod:`.html`) and by ``coditect status``, ``tasks``, ``show`` and ``next`` (through
:mod:`coditect_core.app.view`). The attempts, tokens and cost of a group of attempts (a task's,
an agent's, a run's, the report's) are its ``figures``: a
:class:`~coditect_core.orchestration.spend.Tally`, made by :func:`tally`. How those attempts went
(succeeded, failed, retries, fallbacks, time busy) is read off the attempts themselves. A cost
is ``None`` when it is unknown (no price for the model): sums keep the known part and count the
unknown attempts, so that a partly unknown cost is never shown as a complete one, and never made
up as zero.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..llm_abstractions.datatypes import FinishReason, Usage
from ..orchestration.scheduler import blocked_by
from ..orchestration.spend import Tally
from ..orchestration.tool_loop import APPROVAL_TOOLSET
from ..store.records import CheckRunRecord, TaskChangeRecord, TaskEvent, ToolCallRow
from .fmt import clip, iso

__all__ = [
    "REPORT_FORMAT_VERSION",
    "TRUNCATED",
    "AgentRow",
    "AttemptRow",
    "BlockedGroup",
    "ReportData",
    "RunRow",
    "TaskRow",
    "change_dict",
    "check_dict",
    "tally",
]

TRUNCATED = FinishReason.LENGTH.value
"""The finish reason of a reply cut off at the agent's ``max_tokens``."""

#: Bumped when the JSON report changes in a way that breaks its readers.
REPORT_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One call of one agent on one task (as the store recorded it).

    ``kind`` is ``first`` (the task's first attempt in its run), ``retry`` (the same agent again
    after an attempt of the task failed in the same run) or ``fallback`` (another agent took over
    after a failure in the same run). ``number`` counts the task's attempts over every run.
    ``duration_s`` runs to the report's time for an attempt still in flight.
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
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``length``...); None: no reply (or not recorded)."""
    cached: bool = False
    """Answered from the call journal (a cache hit or a replay): no provider call, no cost."""
    turn: int | None = None
    """An agent loop's model turn that asked for tool calls: its number in the loop."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """The calls that turn asked for (``id``, ``name``, ``arguments``)."""
    tool_runs: list[ToolCallRow] = field(default_factory=list)
    """The calls that ran under it, with their results, in the order they ran."""

    @property
    def truncated(self) -> bool:
        """Its reply was cut off at the agent's ``max_tokens`` (finish reason ``length``)."""
        return self.finish_reason == TRUNCATED

    @property
    def usage(self) -> Usage | None:
        """Its token counts; ``None`` when the attempt reported none."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return Usage(self.prompt_tokens or 0, self.completion_tokens or 0)

    @property
    def tokens(self) -> int | None:
        """Input plus output tokens; ``None`` when the attempt reported none."""
        usage = self.usage
        return None if usage is None else usage.total_tokens

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
            "cached": self.cached,
            "output_chars": None if self.output is None else len(self.output),
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
            **(
                {
                    "turn": self.turn,
                    "tool_calls": [
                        {
                            "id": c.call_id,
                            "name": c.name,
                            "arguments": c.arguments,
                            "result": clip(c.result, TOOL_RESULT_CHARS)[0],
                            "is_error": c.is_error,
                            "duration_seconds": c.duration_s,
                        }
                        for c in self.tool_runs
                    ],
                }
                if self.turn is not None or self.tool_runs
                else {}
            ),
        }


TOOL_RESULT_CHARS = 500
"""What a report keeps of a tool call's result."""


def tally(attempts: Sequence[AttemptRow]) -> Tally:
    """The attempts, tokens and cost of ``attempts``: the one place they are added up."""
    out = Tally()
    for a in attempts:
        out.add(a.usage, a.cost_usd)
    return out


class _Attempted:
    """How a row's attempts went, read off them (their count, tokens and cost are the row's
    ``figures``, a :class:`Tally`)."""

    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def attempts(self) -> Sequence[AttemptRow]: ...

    @property
    def succeeded(self) -> int:
        return sum(a.status == "succeeded" for a in self.attempts)

    @property
    def failed(self) -> int:
        return sum(a.status == "failed" for a in self.attempts)

    @property
    def retries(self) -> int:
        return sum(a.kind == "retry" for a in self.attempts)

    @property
    def fallbacks(self) -> int:
        return sum(a.kind == "fallback" for a in self.attempts)

    @property
    def cached(self) -> int:
        """Attempts answered from the call journal."""
        return sum(a.cached for a in self.attempts)

    @property
    def turns(self) -> int:
        """Model turns of agent loops that asked for tool calls."""
        return sum(a.turn is not None for a in self.attempts)

    @property
    def tool_calls(self) -> int:
        """Tool calls its agent loops ran (a person's decision on a call is no run of it)."""
        return sum(c.toolset != APPROVAL_TOOLSET for a in self.attempts for c in a.tool_runs)

    @property
    def busy_s(self) -> float:
        """Time its attempts took, added up."""
        return sum(a.duration_s for a in self.attempts)

    def _figures_dict(self, t: Tally) -> dict[str, Any]:
        """The JSON ``figures`` of this row, whose tally is ``t``."""
        return {
            "attempts": t.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "cached": self.cached,
            "busy_seconds": self.busy_s,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
            "total_tokens": t.tokens,
            "cost_usd": t.cost_usd,
            "cost_status": t.cost_status,
            "cost_known_usd": t.cost_known_usd,
            "cost_unknown_attempts": t.cost_unknown,
            **(
                {"tool_turns": self.turns, "tool_calls": self.tool_calls}
                if self.turns or self.tool_calls
                else {}
            ),
        }


@dataclass(frozen=True, slots=True)
class TaskRow(_Attempted):
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
    figures: Tally
    output: str | None
    error: str | None
    prompt: str | None
    history: list[TaskEvent] = field(default_factory=list)
    """The task's status changes in scope, oldest first."""
    updated_at: float | None = None
    """When the store last changed the task (``None``: never recorded)."""
    value: Any = None
    """A typed task's validated output (JSON data, its ``output_schema``'s); else ``None``."""
    checks: list[CheckRunRecord] = field(default_factory=list)
    """Its acceptance check runs, oldest first."""
    change: TaskChangeRecord | None = None
    """Its latest change to the repository (a writing task), if it made one."""

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

    @property
    def truncated(self) -> bool:
        """Its latest reply was cut off at ``max_tokens`` (its output, if it has one from a
        model, is that cut reply)."""
        replies = [a for a in self.attempts if a.finish_reason is not None]
        return bool(replies) and replies[-1].truncated

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
            "figures": self._figures_dict(self.figures),
            "error": self.error,
            "truncated": self.truncated,
            "output": self.output,
            **({"value": self.value} if self.value is not None else {}),
            "attempts": [a.to_dict() for a in self.attempts],
            "history": [
                {
                    "at": iso(e.at),
                    "status": e.status,
                    "note": e.note or "",
                    **({"output": e.output} if e.output is not None else {}),
                }
                for e in self.history
            ],
            **({"checks": [check_dict(c) for c in self.checks]} if self.checks else {}),
            **({"change": change_dict(self.change)} if self.change is not None else {}),
        }


def check_dict(c: CheckRunRecord) -> dict[str, Any]:
    """One acceptance check run, JSON-ready."""
    return {
        "attempt": c.attempt,
        "command": c.command,
        "exit_code": c.exit_code,
        "timed_out": c.timed_out,
        "passed": c.passed,
        "duration_s": c.duration_s,
        "output": c.output,
        "at": iso(c.at),
    }


def change_dict(c: TaskChangeRecord, *, diff: bool = True) -> dict[str, Any]:
    """A task's change, JSON-ready: branch, commits, files with lines added and removed."""
    out: dict[str, Any] = {
        "branch": c.branch,
        "start_commit": c.start_commit,
        "commit": c.commit,
        "changed": c.commit is not None,
        "merge_commit": c.merge_commit,
        "merged_at": iso(c.merged_at),
        "files_changed": c.files_changed,
        "lines_added": c.lines_added,
        "lines_removed": c.lines_removed,
        "files": [{"path": p, "added": a, "removed": r} for p, a, r in c.files],
    }
    if diff:
        out["diff"] = c.diff
    return out


@dataclass(frozen=True, slots=True)
class AgentRow(_Attempted):
    """One agent's share of the work: every attempt it made."""

    agent: str
    models: list[str]
    tasks: int
    figures: Tally
    attempts: list[AttemptRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "models": self.models,
            "tasks": self.tasks,
            "figures": self._figures_dict(self.figures),
        }


@dataclass(frozen=True, slots=True)
class RunRow(_Attempted):
    """One run: when, how it ended, its attempts, and how many tasks ended in each status.

    ``wall_s`` runs to the report's time for a run still going."""

    run_id: int
    started_at: float
    finished_at: float | None
    status: str
    wall_s: float
    figures: Tally
    task_counts: dict[str, int]
    options: dict[str, Any]
    attempts: list[AttemptRow] = field(default_factory=list)
    pid: int | None = None
    """The process that ran it, and its host."""
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "status": self.status,
            "wall_seconds": self.wall_s,
            "figures": self._figures_dict(self.figures),
            "task_counts": self.task_counts,
            "options": self.options,
        }


@dataclass(frozen=True, slots=True)
class BlockedGroup:
    """Blocked tasks that wait on the same tasks: ``by``, the tasks upstream that did not get
    done (failed, cancelled...; not themselves blocked), and ``tasks``, those blocked by them.
    ``by`` is empty when the report does not know the graph and no note names the cause."""

    by: list[str]
    tasks: list[str]

    LISTED = 10
    """A report names this many of a group's tasks, then says how many more."""

    def listed(self) -> tuple[list[str], int]:
        """The tasks a report names, and how many more it leaves out."""
        return self.tasks[: self.LISTED], max(len(self.tasks) - self.LISTED, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"by": list(self.by), "tasks": list(self.tasks), "count": len(self.tasks)}


_NAMED_CAUSE = re.compile(r"upstream task (.+) is \w+$|depends on (.+), which is \w+$")


def blocked_groups(tasks: Sequence[TaskRow]) -> list[BlockedGroup]:
    """The blocked ``tasks`` grouped by what blocks them (see :class:`BlockedGroup` and
    :func:`~coditect_core.orchestration.scheduler.blocked_by`), the largest group first.
    Without the graph (a report made without the project file), the cause its note names."""
    causes = blocked_by(
        {t.task_id: t.status for t in tasks}, {t.task_id: t.dependencies for t in tasks}
    )
    errors = {t.task_id: t.error for t in tasks}
    groups: dict[tuple[str, ...], list[str]] = {}
    for tid, by in causes.items():
        if not by and errors[tid]:
            named = _NAMED_CAUSE.search(errors[tid] or "")
            if named:
                by = (named.group(1) or named.group(2),)
        groups.setdefault(by, []).append(tid)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))  # stable: first seen first
    return [BlockedGroup(list(by), ids) for by, ids in ordered]


@dataclass(frozen=True, slots=True)
class ReportData(_Attempted):
    """A project's runs and tasks, read at one moment (``generated_at``). ``run_id`` is the run
    it is limited to (``None``: all); ``tasks`` are in dependency-level order."""

    project: str
    generated_at: float
    run_id: int | None
    runs: list[RunRow]
    tasks: list[TaskRow]
    agents: list[AgentRow]
    totals: Tally
    status_counts: dict[str, int]
    prices: str = ""
    """The price data the runs' calls are priced with (``genai-prices X.Y.Z (packaged data)``)."""

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

    def blocked_groups(self) -> list[BlockedGroup]:
        """Its blocked tasks grouped by what blocks them (:func:`blocked_groups`)."""
        return blocked_groups(self.tasks)

    def task(self, task_id: str) -> TaskRow:
        """The row of ``task_id`` (a scan: for one question, not one per task)."""
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
            "prices": self.prices,
            "totals": {**self._figures_dict(self.totals), "wall_seconds": self.wall_s},
            "status_counts": self.status_counts,
            "runs": [r.to_dict() for r in self.runs],
            "agents": [a.to_dict() for a in self.agents],
            "tasks": [t.to_dict() for t in self.tasks],
            "blocked": [g.to_dict() for g in self.blocked_groups()],
        }

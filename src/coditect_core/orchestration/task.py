"""Tasks: ``AgentTask``, one unit of work for an agent, and its status, priority and phase.

A task names the tasks it depends on; the graph they form is checked by :mod:`.scheduler`.
:meth:`AgentTask.to_dict` and :meth:`AgentTask.from_dict` round-trip through JSON-ready dicts
(datetimes as ISO 8601 strings) without touching the input.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, TypeVar

from ._coerce import coerce_enum

__all__ = ["AgentTask", "ProjectPhase", "TaskPriority", "TaskStatus"]

E = TypeVar("E", bound=Enum)


class TaskStatus(StrEnum):
    """Where a task stands.

    ``awaiting_human`` is a task handed to a person (an interactive agent) that waits until it
    is completed by hand.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_HUMAN = "awaiting_human"

    @property
    def is_final(self) -> bool:
        """Whether the task will not change again without someone acting on it."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskPriority(StrEnum):
    """How urgent a task is. ``rank`` orders them: 0 (critical) up to 3 (low); sort ascending
    to run the most urgent first."""

    rank: int

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    def __init__(self, value: str) -> None:
        # A plain attribute of each member (the enum idiom for data per member): the scheduler
        # reads it for every task, and a property or a dict keyed by the enum costs more.
        self.rank = ("critical", "high", "medium", "low").index(value)


class ProjectPhase(StrEnum):
    """The stage of a project a task belongs to (informational; reports group by it)."""

    PLANNING = "planning"
    DESIGN = "design"
    IMPLEMENTATION = "implementation"
    TESTING = "testing"
    DOCUMENTATION = "documentation"
    DEPLOYMENT = "deployment"
    MAINTENANCE = "maintenance"


def _coerce(enum: type[E], value: Any, what: str, task_id: str) -> E:
    return coerce_enum(enum, value, what=what, owner=f"task {task_id!r}", error=ValueError)


def _parse_time(value: Any, what: str, task_id: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"task {task_id!r}: {what} {value!r} is not an ISO 8601 time") from None


@dataclass
class AgentTask:
    """One task. Strings are accepted for the enum fields and converted.

    ``agent`` names the agent to run it (``None``: the executor's default). ``dependencies`` are
    task ids that must complete first; their outputs reach this task's prompt as context.
    ``output_schema`` (a JSON Schema) makes its output a validated JSON value
    (:mod:`coditect_core.llm_abstractions.output`), asked for in ``output_mode`` (``None``:
    auto) and re-asked up to ``output_retries`` times (``None``: the default, 2).
    """

    task_id: str
    title: str
    description: str = ""
    agent: str | None = None
    priority: TaskPriority = TaskPriority.MEDIUM
    phase: ProjectPhase | str | None = None
    dependencies: list[str] = field(default_factory=list)
    deliverables: list[str] = field(default_factory=list)
    success_criteria: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    estimated_hours: float | None = None
    status: TaskStatus = TaskStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    output_mode: str | None = None
    output_retries: int | None = None

    def typed_output(self) -> dict[str, Any]:
        """The keyword arguments of a typed call for this task (none without a schema)."""
        if self.output_schema is None:
            return {}
        options: dict[str, Any] = {"output_schema": self.output_schema}
        if self.output_mode is not None:
            options["output_mode"] = self.output_mode
        if self.output_retries is not None:
            options["output_retries"] = self.output_retries
        return options

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not self.task_id.strip():
            raise ValueError(f"a task needs a non-empty task_id, got {self.task_id!r}")
        tid = self.task_id
        self.priority = _coerce(TaskPriority, self.priority, "priority", tid)
        self.status = _coerce(TaskStatus, self.status, "status", tid)
        if isinstance(self.phase, str) and not isinstance(self.phase, ProjectPhase):
            with contextlib.suppress(ValueError):  # a project may name its own phases
                self.phase = ProjectPhase(self.phase)
        for name in ("dependencies", "deliverables", "success_criteria", "tags", "notes"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"task {tid!r}: {name} must be a list, not a string")
            setattr(self, name, [str(v) for v in value])
        self.started_at = _parse_time(self.started_at, "started_at", tid)
        self.completed_at = _parse_time(self.completed_at, "completed_at", tid)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as values, times as ISO strings, containers copied)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, datetime):
                value = value.isoformat()
            else:
                value = copy.deepcopy(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentTask:
        """Build from a mapping like :meth:`to_dict`'s; ``data`` is left as it was."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"task {data.get('task_id')!r}: unknown field(s) {', '.join(unknown)}")
        return cls(**copy.deepcopy(dict(data)))

"""``ExecutionResult`` and ``ExecutionStatus``: what one execution of a task produced.

Defined here and re-exported by :mod:`.executor` (where the plan names them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..llm_abstractions.base_llm import Usage

__all__ = ["ExecutionResult", "ExecutionStatus"]


class ExecutionStatus(StrEnum):
    """The outcome of one execution. ``awaiting_human``: handed to a person, not done yet."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_HUMAN = "awaiting_human"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(slots=True)
class ExecutionResult:
    """What one execution of a task produced. ``usage`` sums every model call it made."""

    task_id: str
    agent: str | None = None
    status: ExecutionStatus = ExecutionStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    output: str | None = None
    error: str | None = None
    model: str | None = None
    usage: Usage | None = None
    attempts: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """Whether the task's work is done."""
        return self.status is ExecutionStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "task_id": self.task_id,
            "agent": self.agent,
            "status": self.status.value,
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "duration_seconds": self.duration_seconds,
            "output": self.output,
            "error": self.error,
            "model": self.model,
            "usage": self.usage.to_dict() if self.usage else None,
            "attempts": self.attempts,
            "metadata": json.loads(json.dumps(self.metadata, default=str)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionResult:
        """The inverse of :meth:`to_dict`."""
        usage = data.get("usage")
        times = {
            k: datetime.fromisoformat(data[k]) if data.get(k) else None
            for k in ("started_at", "completed_at")
        }
        return cls(
            task_id=data["task_id"],
            agent=data.get("agent"),
            status=ExecutionStatus(data.get("status", "pending")),
            duration_seconds=data.get("duration_seconds"),
            output=data.get("output"),
            error=data.get("error"),
            model=data.get("model"),
            usage=Usage(**usage) if usage else None,
            attempts=data.get("attempts", 0),
            metadata=dict(data.get("metadata") or {}),
            **times,
        )

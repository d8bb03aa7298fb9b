"""``ExecutionResult`` and ``ExecutionStatus``: what one execution of a task produced.

Defined here and re-exported by :mod:`.executor` (where the plan names them). The same type
carries an execution's result, each of its failed attempts, and a result recorded by hand.
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
    """What one execution of a task produced: its last attempt, and the attempts before it.

    ``agent``, ``model``, ``usage``, ``cost_usd`` and ``error`` are the last attempt's (``usage``
    sums its model calls: a hybrid agent makes three); ``cost_usd`` is ``None`` when unknown
    (no price for the model, or a failure the provider may have billed). ``attempts`` counts the
    requests made, all attempts together. ``earlier_attempts`` are the attempts that failed
    before the last one (a retry or a fallback each), in order, as results of their own.
    ``fallback_from`` names the first agent when a fallback made the last attempt. ``cached``:
    every request of the last attempt was answered from the call journal (no provider call).
    ``metadata`` holds what an interface adds (a hybrid agent's draft and review, an
    interactive agent's hand-off prompt, a Ray runner's lost requests).
    """

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
    interface: str | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    fallback_from: str | None = None
    cached: bool = False
    earlier_attempts: list[ExecutionResult] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    """A typed task's validated output (plain JSON data; ``output`` is its JSON text)."""

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
            "interface": self.interface,
            "cost_usd": self.cost_usd,
            "finish_reason": self.finish_reason,
            "fallback_from": self.fallback_from,
            "cached": self.cached,
            "earlier_attempts": [e.to_dict() for e in self.earlier_attempts],
            "metadata": json.loads(json.dumps(self.metadata, default=str)),
            "value": self.value,
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
            interface=data.get("interface"),
            cost_usd=data.get("cost_usd"),
            finish_reason=data.get("finish_reason"),
            fallback_from=data.get("fallback_from"),
            cached=bool(data.get("cached", False)),
            earlier_attempts=[cls.from_dict(e) for e in data.get("earlier_attempts") or ()],
            metadata=dict(data.get("metadata") or {}),
            value=data.get("value"),
            **times,
        )

"""AgentTask conversion, validation and its dict round trip."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from coditect_core.orchestration.task import AgentTask, ProjectPhase, TaskPriority, TaskStatus


def test_statuses_include_awaiting_human_and_priorities_rank() -> None:
    assert {s.value for s in TaskStatus} == {
        "pending",
        "in_progress",
        "blocked",
        "completed",
        "failed",
        "cancelled",
        "awaiting_human",
    }
    ranked = sorted(TaskPriority, key=lambda p: p.rank)
    assert ranked == [
        TaskPriority.CRITICAL,
        TaskPriority.HIGH,
        TaskPriority.MEDIUM,
        TaskPriority.LOW,
    ]


def test_round_trip_does_not_mutate_input() -> None:
    task = AgentTask(
        "T1",
        "Title",
        "Describe",
        agent="a",
        priority="high",
        phase="implementation",
        dependencies=["T0"],
        deliverables=["code"],
        success_criteria=["tests pass"],
        tags=["x"],
        estimated_hours=1.5,
        status="completed",
        started_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        completed_at=datetime(2025, 1, 2, 3, 5, 5, tzinfo=UTC),
        notes=["n"],
        metadata={"nested": {"k": [1, 2]}},
    )
    assert task.priority is TaskPriority.HIGH
    assert task.phase is ProjectPhase.IMPLEMENTATION
    data = task.to_dict()
    assert data["started_at"] == "2025-01-02T03:04:05+00:00"
    assert data["status"] == "completed"
    snapshot = copy.deepcopy(data)
    again = AgentTask.from_dict(data)
    assert data == snapshot
    assert again == task
    again.metadata["nested"]["k"].append(3)
    again.dependencies.append("T9")
    assert data == snapshot
    assert task.metadata == {"nested": {"k": [1, 2]}}


def test_custom_phase_kept_and_bad_values_refused() -> None:
    assert AgentTask("T", "t", phase="discovery").phase == "discovery"
    with pytest.raises(ValueError, match="priority is 'urgent'; expected one of critical"):
        AgentTask("T", "t", priority="urgent")
    with pytest.raises(ValueError, match="dependencies must be a list"):
        AgentTask("T", "t", dependencies="A")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown field"):
        AgentTask.from_dict({"task_id": "T", "title": "t", "owner": "me"})
    with pytest.raises(ValueError, match="ISO 8601"):
        AgentTask.from_dict({"task_id": "T", "title": "t", "started_at": "yesterday"})

"""Import of the original orchestrator's project_state.json (format version 2)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import StateError
from coditect_core.orchestration.resume import plan_resume
from coditect_core.store import StateStore
from coditect_core.store.legacy import legacy_checksum, load_project_state

pytestmark = pytest.mark.timeout(60)


def _task(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A task as the original ``AgentTask.to_dict`` writes it."""
    return {
        "task_id": task_id,
        "title": f"Title of {task_id}",
        "description": f"Do {task_id}.",
        "agent": "claude-code",
        "priority": "high",
        "phase": "development",
        "dependencies": [],
        "estimated_hours": 2.0,
        "deliverables": [],
        "success_criteria": [],
        "commands": [],
        "tags": [],
        "status": status,
        "started_at": "2025-11-12T01:30:45.123456" if status != "pending" else None,
        "completed_at": "2025-11-12T02:00:00" if status == "completed" else None,
        "output_files": [],
        "notes": "",
        "metadata": {},
        **extra,
    }


def _state_file(path: Path, tasks: dict[str, dict[str, Any]], **override: Any) -> Path:
    """Write ``tasks`` the way the original ``StateManager.save_state`` does."""
    completed = sum(1 for t in tasks.values() if t["status"] == "completed")
    state = {
        "version": "1.0",
        "format_version": 2,
        "project_id": "calendar-platform",
        "last_updated": "2025-11-12T02:00:01",
        "last_updated_by": "StateManager",
        "tasks": tasks,
        "metrics": {
            "total_tasks": len(tasks),
            "completed_tasks": completed,
            "in_progress_tasks": sum(1 for t in tasks.values() if t["status"] == "in_progress"),
            "pending_tasks": sum(1 for t in tasks.values() if t["status"] == "pending"),
            "completion_percentage": round(completed / len(tasks) * 100, 2),
        },
        "metadata": {"created_at": "2025-11-10T09:00:00", "total_state_changes": 7},
        "checksum": hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()[:16],
    }
    state.update(override)
    path.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def _tasks() -> dict[str, dict[str, Any]]:
    return {
        "DB-001": _task("DB-001", "completed", notes="Schema in prisma/schema.prisma",
                        output_files=["prisma/schema.prisma"]),
        "API-001": _task("API-001", "in_progress", dependencies=["DB-001"]),
        "API-002": _task("API-002", "failed", notes="tests failed"),
        "UI-001": _task("UI-001", "pending", description="Écran de connexion ✓"),
        "OPS-001": _task("OPS-001", "blocked"),
        "OLD-001": _task("OLD-001", "cancelled"),
    }  # fmt: skip


def test_checksum_matches_the_original_algorithm() -> None:
    tasks = {"A": {"b": 1, "a": "é"}}
    expected = hashlib.sha256(b'{"A": {"a": "\\u00e9", "b": 1}}').hexdigest()[:16]
    assert legacy_checksum(tasks) == expected


def test_good_file_is_imported(tmp_path: Path) -> None:
    source = _state_file(tmp_path / "project_state.json", _tasks())
    with StateStore.open(tmp_path / "state.db") as store:
        report = store.import_project_state(source)
        assert report.project == "calendar-platform"
        assert report.tasks == 6
        assert report.statuses == {
            "completed": 1,
            "pending": 2,
            "failed": 1,
            "blocked": 1,
            "cancelled": 1,
        }
        tasks = {t.task_id: t for t in store.snapshot("calendar-platform").tasks}
        assert {tid: t.status for tid, t in tasks.items()} == {
            "DB-001": "completed",
            "API-001": "pending",
            "API-002": "failed",
            "UI-001": "pending",
            "OPS-001": "blocked",
            "OLD-001": "cancelled",
        }
        assert tasks["DB-001"].output == "Schema in prisma/schema.prisma"
        (run,) = store.runs("calendar-platform")
        assert run.status == "imported"
        assert run.options["imported_from"] == str(source)
        assert run.options["metrics"]["total_tasks"] == 6
        assert run.options["metadata"]["total_state_changes"] == 7
        (event,) = store.task_history("calendar-platform", "API-001")
        assert "status there: in_progress" in (event.note or "")
        (done,) = store.task_history("calendar-platform", "DB-001")
        assert "prisma/schema.prisma" in (done.note or "")
        assert done.at < run.started_at  # the original completion time is kept
        # The imported success counts for resuming, whatever hash the task has now.
        succeeded = store.succeeded_tasks("calendar-platform")
        assert set(succeeded) == {"DB-001"}
        plan = plan_resume(
            {tid: "sha256:now" for tid in tasks}, {tid: [] for tid in tasks}, succeeded
        )
        assert "DB-001" in plan.skip
        # And the project can run afterwards (the import released its lock).
        assert store.lock_holder("calendar-platform") is None


def test_file_with_a_full_length_checksum_is_accepted(tmp_path: Path) -> None:
    tasks = _tasks()
    full = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()
    source = _state_file(tmp_path / "project_state.json", tasks, checksum=full.upper())
    assert load_project_state(source).tasks.keys() == tasks.keys()


def _assert_nothing_imported(store: StateStore, project: str = "calendar-platform") -> None:
    snapshot = store.snapshot(project)
    assert snapshot.tasks == []
    assert snapshot.runs == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["tasks"]["DB-001"].update(status="pending"), "checksum mismatch"),
        (lambda s: s["tasks"].pop("OLD-001"), "checksum mismatch"),
        (lambda s: s.update(checksum="0000000000000000"), "checksum mismatch"),
        (lambda s: s.pop("checksum"), "no checksum"),
        (lambda s: s.update(format_version=1), "format_version is 1"),
        (lambda s: s.update(format_version=3), "format_version is 3"),
        (lambda s: s["metrics"].update(completed_tasks=5), "metrics.completed_tasks"),
        (lambda s: s.update(tasks=[]), "'tasks' must map"),
    ],
    ids=[
        "edited-task",
        "removed-task",
        "wrong-checksum",
        "no-checksum",
        "version-1",
        "version-3",
        "metrics",
        "tasks-list",
    ],
)
def test_bad_file_is_refused_and_nothing_imported(tmp_path: Path, mutate, message: str) -> None:
    source = _state_file(tmp_path / "project_state.json", _tasks())
    state = json.loads(source.read_text())
    mutate(state)
    source.write_text(json.dumps(state))
    with StateStore.open(tmp_path / "state.db") as store:
        with pytest.raises(StateError, match=message) as info:
            store.import_project_state(source)
        assert str(source) in str(info.value)
        _assert_nothing_imported(store)


def test_unknown_task_status_is_refused(tmp_path: Path) -> None:
    tasks = {"A": _task("A", "done")}
    source = _state_file(tmp_path / "project_state.json", tasks)
    with pytest.raises(StateError, match="unknown status 'done'"):
        load_project_state(source)


def test_not_json_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "project_state.json"
    source.write_text("{ not json")
    with pytest.raises(StateError, match="not a JSON state file"):
        load_project_state(source)
    with pytest.raises(StateError, match="cannot read"):
        load_project_state(tmp_path / "missing.json")


def test_project_with_state_is_not_overwritten(tmp_path: Path) -> None:
    source = _state_file(tmp_path / "project_state.json", _tasks())
    with StateStore.open(tmp_path / "state.db") as store:
        store.import_project_state(source)
        before = store.snapshot("calendar-platform")
        with pytest.raises(StateError, match="already has tasks"):
            store.import_project_state(source)
        assert store.snapshot("calendar-platform") == before
        # Under another name it is a new project.
        report = store.import_project_state(source, project="copy")
        assert report.tasks == 6


def test_project_name_is_needed(tmp_path: Path) -> None:
    source = _state_file(tmp_path / "project_state.json", _tasks(), project_id="")
    with StateStore.open(tmp_path / "state.db") as store:
        with pytest.raises(StateError, match="names no project_id"):
            store.import_project_state(source)
        assert store.import_project_state(source, project="named").project == "named"

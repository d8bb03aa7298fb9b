"""Import of the original orchestrator's state file, ``project_state.json`` (format version 2).

The format is the one written by the original coditect-core ``StateManager.save_state``
(``orchestration/state_manager.py``, format ``V2 = 2  # Added checksums, metrics, metadata``)::

    {"version": "1.0", "format_version": 2, "project_id": "...", "last_updated": "<ISO>",
     "last_updated_by": "StateManager",
     "tasks": {"<task id>": {AgentTask.to_dict(): task_id, title, description, agent, priority,
               phase, dependencies, ..., status, started_at, completed_at, output_files, notes,
               metadata}},
     "metrics": {"total_tasks", "completed_tasks", "in_progress_tasks", "pending_tasks",
                 "completion_percentage"},
     "metadata": {"created_at", "total_state_changes"},
     "checksum": sha256(json.dumps(tasks, sort_keys=True)).hexdigest()[:16]}

The checksum covers ``tasks`` only, serialised with Python's default separators and
``ensure_ascii``, and is truncated to 16 hex digits, exactly as the original computes it (a full
64-digit digest is accepted too). :func:`load_project_state` refuses, before anything is written,
a file that is not JSON, not format version 2, has no checksum or a wrong one, a task whose
status the original did not know, or metrics that disagree with the tasks. The import then
writes, in one transaction under the project's run lock, one run with status ``imported``
(the file's metrics and metadata in its options), every task with its status and one history
entry. Tasks ``in_progress`` in the file come in ``pending`` (their process is gone). Imported
successes have no content hash (the original kept none):
:func:`~coditect_core.orchestration.resume.plan_resume` trusts them until their definition
changes after the import. Task definitions are not kept: the project file defines the tasks. A
project that already has tasks in the store is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StateError
from ..secrets import Scrubber
from .lock import AnyLock
from .ops import ensure_project

__all__ = ["FORMAT_VERSION", "ImportReport", "LegacyState", "legacy_checksum", "load_project_state"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
_STATUS = {  # the original TaskStatus -> ours
    "pending": "pending",
    "in_progress": "pending",
    "blocked": "blocked",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def legacy_checksum(tasks: Any, *, full: bool = False) -> str:
    """The original ``StateManager._compute_checksum``: 16 hex digits of sha256 (all 64 with
    ``full``)."""
    digest = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode("utf-8")).hexdigest()
    return digest if full else digest[:16]


@dataclass(frozen=True)
class LegacyState:
    """A verified ``project_state.json``."""

    path: Path
    project_id: str
    tasks: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    header: dict[str, Any]


@dataclass(frozen=True)
class ImportReport:
    project: str
    run_id: int
    tasks: int
    statuses: dict[str, int] = field(default_factory=dict)


def load_project_state(path: str | os.PathLike[str]) -> LegacyState:
    """Read and verify a format-2 ``project_state.json``; :class:`StateError` names the problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise StateError(f"{path}: cannot read the state file: {e.strerror}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"{path}: not a JSON state file ({e}); nothing imported") from e
    if not isinstance(raw, dict):
        raise StateError(f"{path}: a state file holds a JSON object; nothing imported")
    version = raw.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise StateError(
            f"{path}: format_version is {version!r}; only format version {FORMAT_VERSION} "
            "(the original orchestrator's, with checksum and metrics) can be imported"
        )
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or not all(isinstance(t, dict) for t in tasks.values()):
        raise StateError(f"{path}: 'tasks' must map task ids to task objects; nothing imported")
    stored = raw.get("checksum")
    if not isinstance(stored, str) or not stored:
        raise StateError(f"{path}: the state file has no checksum; nothing imported")
    actual = legacy_checksum(tasks, full=True)
    if stored.lower() not in (actual[:16], actual):
        raise StateError(
            f"{path}: checksum mismatch (the file says {stored}, its tasks hash to "
            f"{actual[:16]}): the file was changed or damaged; nothing imported"
        )
    for tid, task in tasks.items():
        status = task.get("status", "pending")
        if status not in _STATUS:
            raise StateError(f"{path}: task {tid!r} has unknown status {status!r}")
        if task.get("task_id", tid) != tid:
            raise StateError(f"{path}: task {tid!r} says its id is {task.get('task_id')!r}")
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise StateError(f"{path}: 'metrics' must be an object; nothing imported")
    _check_metrics(path, tasks, metrics)
    metadata = raw.get("metadata") or {}
    header = {k: raw[k] for k in ("version", "last_updated", "last_updated_by") if k in raw}
    return LegacyState(
        path,
        str(raw.get("project_id") or ""),
        tasks,
        metrics,
        metadata if isinstance(metadata, dict) else {},
        header,
    )


def _check_metrics(path: Path, tasks: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> None:
    counts = {
        "total_tasks": len(tasks),
        "completed_tasks": sum(1 for t in tasks.values() if t.get("status") == "completed"),
        "in_progress_tasks": sum(1 for t in tasks.values() if t.get("status") == "in_progress"),
        "pending_tasks": sum(1 for t in tasks.values() if t.get("status") == "pending"),
    }
    for key, expected in counts.items():
        if key in metrics and metrics[key] != expected:
            raise StateError(
                f"{path}: metrics.{key} is {metrics[key]!r} but the tasks count {expected}; "
                "nothing imported"
            )


def import_op(
    state: LegacyState, project: str, scrubber: Scrubber, lock: AnyLock
) -> Callable[[sqlite3.Connection], ImportReport]:
    """The solo writer operation that imports ``state`` as ``project`` (see module doc)."""

    def op(conn: sqlite3.Connection) -> ImportReport:
        lock.acquire()
        try:
            scrubber.refresh()
            s = scrubber.text
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                proj = ensure_project(conn, project, now)
                if conn.execute("SELECT 1 FROM tasks WHERE project_id = ?", (proj,)).fetchone():
                    raise StateError(
                        f"project {project!r} already has tasks in the store; "
                        "import only into a new project"
                    )
                options = {
                    "imported_from": str(state.path),
                    "format_version": FORMAT_VERSION,
                    **state.header,
                    "metrics": state.metrics,
                    "metadata": state.metadata,
                }
                cur = conn.execute(
                    "INSERT INTO runs(project_id, started_at, finished_at, status, options, pid, "
                    "host) VALUES (?, ?, ?, 'imported', ?, ?, ?)",
                    (proj, now, now, scrubber.json(options), os.getpid(), socket.gethostname()),
                )
                run_id = int(cur.lastrowid or 0)
                statuses: dict[str, int] = {}
                fallback = _when(state.header.get("last_updated")) or now
                for tid, task in state.tasks.items():
                    was = task.get("status", "pending")
                    status = _STATUS[was]
                    statuses[status] = statuses.get(status, 0) + 1
                    at = _when(task.get("completed_at")) or _when(task.get("started_at"))
                    notes = task.get("notes") or None
                    cur = conn.execute(
                        "INSERT INTO tasks(project_id, task_id, status, output, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (proj, s(tid), status, s(notes) if status == "completed" else None, now),
                    )
                    ref = cur.lastrowid
                    note = f"imported from {state.path.name} (status there: {was})"
                    files = task.get("output_files") or []
                    if files:
                        note += "; output files: " + ", ".join(map(str, files))
                    cur = conn.execute(
                        "INSERT INTO task_events(task_ref, run_id, status, at, note) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (ref, run_id, status, at or fallback, s(note)),
                    )
                    if status == "completed":
                        conn.execute(
                            "UPDATE tasks SET success_seq = ? WHERE id = ?", (cur.lastrowid, ref)
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            lock.release()
        logger.info(
            "imported %d tasks of %s into project %r", len(state.tasks), state.path, project
        )
        return ImportReport(project, run_id, len(state.tasks), statuses)

    return op


def _when(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp()

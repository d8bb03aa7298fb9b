"""The durable state of projects, in SQLite: runs, tasks, their transitions and attempts.

:class:`StateStore` is the one entry point (open, record a run, read); :class:`StoreObserver`
records an orchestrator's run into it. The parts:

* :mod:`.state_store` ``StateStore``: opening, runs, task and attempt writes, reads
* :mod:`.schema`      the file format: identity checks, schema, numbered migrations
* :mod:`.writer`      the single writer thread and its group commit, in submission order
* :mod:`.ops`         the write operations (run begin/finish, task and attempt transitions)
* :mod:`.records`     the records handed back, and the read queries
* :mod:`.lock`        the per-project run lock (``flock``), taken over from dead holders
* :mod:`.backups`     online backups of a state database, kept bounded; restoring one
* :mod:`.legacy`      import of the original orchestrator's ``project_state.json``
* :mod:`.observer`    the orchestrator observer that records a run into a store
* :mod:`.journal`     the call journal: requests by content hash, their answers; a run's journal
* :mod:`.null`        ``NullRecorder``: the write interface, keeping nothing

What must run again is decided from these records by
:mod:`coditect_core.orchestration.resume` (pure).
"""

from __future__ import annotations

from .backups import (
    DEFAULT_KEEP_BACKUPS,
    Backup,
    backup_state,
    list_backups,
    restore_backup,
)
from .legacy import ImportReport
from .null import NullRecorder
from .observer import StoreObserver, run_status
from .records import (
    AttemptOutcome,
    AttemptRecord,
    AttemptStatus,
    CheckRunRecord,
    ProjectSnapshot,
    Recovery,
    RunInfo,
    RunRecord,
    TaskChangeRecord,
    TaskEvent,
    TaskRecord,
)
from .state_store import StateStore, default_state_path, state_path_for

__all__ = [
    "DEFAULT_KEEP_BACKUPS",
    "AttemptOutcome",
    "AttemptRecord",
    "AttemptStatus",
    "Backup",
    "CheckRunRecord",
    "ImportReport",
    "NullRecorder",
    "ProjectSnapshot",
    "Recovery",
    "RunInfo",
    "RunRecord",
    "StateStore",
    "StoreObserver",
    "TaskChangeRecord",
    "TaskEvent",
    "TaskRecord",
    "backup_state",
    "default_state_path",
    "list_backups",
    "restore_backup",
    "run_status",
    "state_path_for",
]

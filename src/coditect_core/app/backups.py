"""Back a project's state up, list its backups, roll it back to one (``coditect state``).

The project file says where the state lives (``.coditect/state.db`` beside it, unless ``state``
says otherwise), the project's name (whose run lock a restore takes) and how many backups to
keep (``keep_backups:``, default 5). The work itself is :mod:`coditect_core.store.backups`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..project import read_project_file
from ..store import state_path_for
from ..store.backups import Backup, backup_state, list_backups, restore_backup

__all__ = ["backup_project", "project_backups", "restore_project"]


def _where(path: str | os.PathLike[str], state: str | os.PathLike[str] | None) -> Path:
    return state_path_for(path, state)


def backup_project(
    path: str | os.PathLike[str], *, state: str | os.PathLike[str] | None = None
) -> Backup:
    """Back the state of the project file at ``path`` up (safe while it runs)."""
    spec = read_project_file(path).spec
    return backup_state(_where(path, state), reason="manual", keep=spec.keep_backups)


def project_backups(
    path: str | os.PathLike[str], *, state: str | os.PathLike[str] | None = None
) -> tuple[Path, list[Backup]]:
    """The state database of the project file at ``path`` and its backups, newest first."""
    read_project_file(path)  # a bad file is refused, as by every command
    db = _where(path, state)
    return db, list_backups(db)


def restore_project(
    path: str | os.PathLike[str],
    backup: str,
    *,
    state: str | os.PathLike[str] | None = None,
) -> tuple[Backup, Backup | None]:
    """Roll the state of the project file at ``path`` back to ``backup``: refused while one of
    its runs is live; the current state is backed up first (the second value returned)."""
    project_file = read_project_file(path)
    return restore_backup(
        _where(path, state),
        backup,
        projects=[project_file.name],
        keep=project_file.spec.keep_backups,
    )

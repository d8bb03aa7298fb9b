"""Backups of a state database, and rolling one back: SQLite's online backup, kept bounded.

A backup is a copy of the whole database made with SQLite's online backup API
(:meth:`sqlite3.Connection.backup`, in one step: one read transaction, so a consistent snapshot
even while a run writes, and the writer is never blocked in WAL mode). It is checked
(``PRAGMA integrity_check``), written under a temporary name and renamed into place, mode 0600,
as one self-contained file (rollback journal, no ``-wal`` beside it) in ``backups/`` beside the
database: ``<stem>-<UTC time>-<reason>.db`` (reasons: ``manual``, ``restart``, ``migration``,
``before-restore``). After each backup only the newest ``keep`` (default
:data:`DEFAULT_KEEP_BACKUPS`, a project file's ``keep_backups:``) are kept.

:func:`restore_backup` rolls the database back to a backup: refused while a run of any of its
projects is live (each project's run lock, :mod:`.lock`, is held for the whole restore), the
backup is checked first (ours, not corrupt, not from a newer coditect-core), the current state is
backed up (``before-restore``), then the backup is copied in through the same online backup API
(readers see the old state or the new one, never a mix).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StateError
from .lock import RunLock, lock_path_for
from .schema import APPLICATION_ID, SCHEMA_VERSION, read_header

__all__ = [
    "DEFAULT_KEEP_BACKUPS",
    "Backup",
    "backup_dir",
    "backup_state",
    "find_backup",
    "list_backups",
    "prune_backups",
    "restore_backup",
]

DEFAULT_KEEP_BACKUPS = 5
_BUSY_TIMEOUT_S = 10.0
_NAME = re.compile(r"^(?P<stem>.+)-(?P<when>\d{8}T\d{12}Z)-(?P<reason>[a-z-]+)\.db$")


@dataclass(frozen=True, slots=True)
class Backup:
    """One backup file: where, when (Unix time), why, and its size in bytes."""

    path: Path
    created: float
    reason: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "created": datetime.fromtimestamp(self.created, UTC).isoformat(),
            "reason": self.reason,
            "bytes": self.size,
        }


def backup_dir(db_path: Path) -> Path:
    """Where the backups of the database at ``db_path`` are kept: ``backups/`` beside it."""
    return Path(db_path).parent / "backups"


def list_backups(db_path: Path) -> list[Backup]:
    """The backups of ``db_path``, newest first (an empty list when there are none)."""
    db_path = Path(db_path)
    folder = backup_dir(db_path)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = _NAME.match(entry.name)
            if match is None or match["stem"] != db_path.stem or not entry.is_file():
                continue
            when = datetime.strptime(match["when"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            found.append(
                Backup(Path(entry.path), when.timestamp(), match["reason"], entry.stat().st_size)
            )
    found.sort(key=lambda b: b.created, reverse=True)
    return found


def find_backup(db_path: Path, backup: str | os.PathLike[str]) -> Backup:
    """The backup of ``db_path`` named ``backup`` (its file name, or a path to it)."""
    wanted = Path(backup).name
    for found in list_backups(db_path):
        if found.name == wanted or found.path == Path(backup):
            return found
    known = ", ".join(b.name for b in list_backups(db_path)) or "none"
    raise StateError(f"{backup}: no such backup of {db_path} (backups: {known})")


def backup_state(
    db_path: Path,
    *,
    reason: str = "manual",
    keep: int = DEFAULT_KEEP_BACKUPS,
    protect: Path | None = None,
) -> Backup:
    """Back the database at ``db_path`` up (safe while a run writes); keep the newest ``keep``.

    Raises :class:`StateError` naming the path when there is no database, or it cannot be read
    or copied; nothing is left half-written. ``protect`` is a backup never pruned here.
    """
    db_path = Path(db_path)
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    if not re.fullmatch(r"[a-z-]+", reason):
        raise ValueError(f"a backup reason is lowercase letters and dashes, not {reason!r}")
    if not db_path.exists():
        raise StateError(f"{db_path}: no state database here: nothing to back up")
    folder = backup_dir(db_path)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StateError(f"{folder}: cannot make the backup folder: {e.strerror}") from e
    now = time.time()
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"{db_path.stem}-{stamp}-{reason}.db"
    while final.exists():  # two backups in the same microsecond
        now += 1e-6
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = folder / f"{db_path.stem}-{stamp}-{reason}.db"
    temp = folder / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        _copy(db_path, temp)
        os.chmod(temp, 0o600)
        os.rename(temp, final)
    except sqlite3.Error as e:
        raise StateError(f"{db_path}: cannot back up the state database: {e}") from e
    except OSError as e:
        raise StateError(f"{db_path}: cannot back up the state database: {e.strerror}") from e
    finally:
        for leftover in (temp, Path(f"{temp}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    prune_backups(db_path, keep, protect=protect)
    return Backup(final, now, reason, final.stat().st_size)


def prune_backups(db_path: Path, keep: int, *, protect: Path | None = None) -> list[Backup]:
    """Delete all but the newest ``keep`` backups of ``db_path`` (never ``protect``); returns
    those deleted."""
    gone = [b for b in list_backups(db_path)[keep:] if b.path != protect]
    for old in gone:
        with contextlib.suppress(FileNotFoundError):
            old.path.unlink()
    return gone


def restore_backup(
    db_path: Path,
    backup: str | os.PathLike[str],
    *,
    projects: Iterable[str] = (),
    keep: int = DEFAULT_KEEP_BACKUPS,
) -> tuple[Backup, Backup | None]:
    """Roll the database at ``db_path`` back to ``backup`` (a name from :func:`list_backups`).

    Refused with :class:`RunLockedError` while a run of ``projects`` or of any project in the
    database is live; a backup that is not ours, corrupt or newer is refused with
    :class:`StateError`; in both cases nothing changes. Returns the backup restored and the
    backup of the state it replaced (``None`` when there was no database).
    """
    db_path = Path(db_path)
    chosen = find_backup(db_path, backup)
    _check(chosen.path)
    names = set(projects) | (_project_names(db_path) if db_path.exists() else set())
    with _locked(db_path, sorted(names)):
        before = (
            backup_state(db_path, reason="before-restore", keep=keep, protect=chosen.path)
            if db_path.exists()
            else None
        )
        try:
            if not db_path.exists():
                db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
            src = _connect(f"{chosen.path.resolve().as_uri()}?mode=ro")
            try:
                dst = _connect(f"{db_path.resolve().as_uri()}?mode=rw")
                try:
                    src.backup(dst)
                    dst.execute("PRAGMA journal_mode=WAL")
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.Error as e:
            raise StateError(f"{db_path}: cannot restore {chosen.name}: {e}") from e
        prune_backups(db_path, keep)
    return chosen, before


def _connect(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)


def _copy(db_path: Path, dest: Path) -> None:
    """The online backup of ``db_path`` into the new file ``dest``, checked."""
    src = _connect(f"{db_path.resolve().as_uri()}?mode=ro")
    try:
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)  # one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            problem = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its integrity check: {problem}")
        finally:
            dst.close()
    finally:
        src.close()


def _check(path: Path) -> None:
    """Refuse a backup that is not a state database of ours, is corrupt, or is newer."""
    header = read_header(path)
    if header is None or header[0] != APPLICATION_ID:
        raise StateError(f"{path}: not a coditect state database; nothing restored")
    if header[1] > SCHEMA_VERSION:
        raise StateError(
            f"{path}: written by a newer coditect-core (schema version {header[1]}, this "
            f"version reads up to {SCHEMA_VERSION}); nothing restored"
        )
    try:
        conn = _connect(f"{path.resolve().as_uri()}?mode=ro")
        try:
            problem = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise StateError(f"{path}: the backup cannot be read ({e}); nothing restored") from e
    if problem != "ok":
        raise StateError(f"{path}: the backup is corrupt ({problem}); nothing restored")


def _project_names(db_path: Path) -> set[str]:
    try:
        conn = _connect(f"{db_path.resolve().as_uri()}?mode=ro")
        try:
            return {row[0] for row in conn.execute("SELECT name FROM projects")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise StateError(f"{db_path}: cannot read the state database: {e}") from e


@contextlib.contextmanager
def _locked(db_path: Path, projects: list[str]) -> Iterator[None]:
    """Hold the run lock of every project in ``projects`` (a live run: RunLockedError)."""
    held: list[RunLock] = []
    try:
        for name in projects:
            lock = RunLock(lock_path_for(db_path, name), name)
            lock.acquire()
            held.append(lock)
        yield
    finally:
        for lock in held:
            lock.release()

"""The state database's file format: its identity check, its schema and its numbered migrations.

A state database is an SQLite file whose header carries our ``application_id`` (``"CoDT"``) and
whose ``schema_migrations`` table lists every migration applied to it. Migrations are numbered and
append-only: a released migration is never edited, a change of schema is a new entry at the end
of :data:`MIGRATIONS`. ``PRAGMA user_version`` mirrors the highest applied number so that the
version can be read from the header without parsing the schema. A migration missing from
``schema_migrations`` is applied even when a higher one is there (numbers may have a gap while
two branches each add one; once merged, a database that had the higher one gets the lower).

:func:`open_database` refuses, with a :class:`StateError` naming the path and before anything is
written to it, a file that is not SQLite, an SQLite file that is not ours (no or another
``application_id``), a corrupt one, and one written by a newer coditect-core. Times are stored as
Unix seconds (REAL, UTC); JSON columns hold compact JSON text.

A new database is created whole, never seen half-made: it is built (schema, identity, WAL mode)
in a private temporary file beside its path, closed (SQLite folds its WAL into it), and only then
given its name with ``link(2)``, which fails rather than replace a file that another process
created meanwhile (that one is then used). A reader therefore finds either no file, or a file
with its complete schema: never an empty file or "schema version 0".

``task_events`` and ``attempts`` are append-mostly logs written on every transition, with no
secondary index: the queries that would use one (one task's history, recovery after a crash) are
rare, and a scan of a few hundred thousand rows takes tens of milliseconds. Their foreign keys
still hold (rows are never deleted, keys never change). ``tasks.held`` (migration 2) marks a task
a person decided: cancelled by hand (``coditect task cancel``), it stays cancelled until it is
reset; completed by hand (``coditect task complete``, migration 3), runs keep it until it is
rerun. Migration 3 also records each attempt's ``finish_reason`` and keeps the output of a
completion by hand in its history entry (``task_events.output``). The
``journal_*`` tables (migration 4) are the call journal (:mod:`.journal`); ``attempts.cached``
marks an attempt answered from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import StateError

__all__ = [
    "APPLICATION_ID",
    "MEMORY",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "open_database",
    "open_memory_database",
    "read_header",
]

logger = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of every coditect state database: the bytes ``b"CoDT"``.
APPLICATION_ID = int.from_bytes(b"CoDT", "big")

_SQLITE_MAGIC = b"SQLite format 3\x00"

#: The path that asks for a database in memory (as with :func:`sqlite3.connect`).
MEMORY = ":memory:"

Migration = tuple[int, str, str]
"""``(number, name, SQL script)``."""

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "initial schema",
        """
        CREATE TABLE projects (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL UNIQUE,
            created_at  REAL NOT NULL
        );
        CREATE TABLE runs (
            id           INTEGER PRIMARY KEY,
            project_id   INTEGER NOT NULL REFERENCES projects(id),
            started_at   REAL NOT NULL,
            finished_at  REAL,
            status       TEXT NOT NULL,
            options      TEXT NOT NULL DEFAULT '{}',
            pid          INTEGER,
            host         TEXT
        );
        CREATE INDEX runs_by_project ON runs(project_id);
        CREATE TABLE tasks (
            id              INTEGER PRIMARY KEY,
            project_id      INTEGER NOT NULL REFERENCES projects(id),
            task_id         TEXT NOT NULL,
            content_hash    TEXT,
            status          TEXT NOT NULL,
            output          TEXT,
            error           TEXT,
            updated_at      REAL NOT NULL,
            succeeded_hash  TEXT,
            success_seq     INTEGER,
            UNIQUE (project_id, task_id)
        );
        CREATE TABLE task_events (
            id        INTEGER PRIMARY KEY,
            task_ref  INTEGER NOT NULL REFERENCES tasks(id),
            run_id    INTEGER REFERENCES runs(id),
            status    TEXT NOT NULL,
            at        REAL NOT NULL,
            note      TEXT
        );
        CREATE TABLE attempts (
            id                 INTEGER PRIMARY KEY,
            run_id             INTEGER NOT NULL REFERENCES runs(id),
            task_ref           INTEGER NOT NULL REFERENCES tasks(id),
            agent              TEXT,
            model              TEXT,
            interface          TEXT,
            started_at         REAL NOT NULL,
            finished_at        REAL,
            status             TEXT NOT NULL,
            error              TEXT,
            prompt_tokens      INTEGER,
            completion_tokens  INTEGER,
            latency_s          REAL,
            cost               REAL,
            output             TEXT
        );
        """,
    ),
    (
        2,
        "tasks.held: a task cancelled by hand",
        # Until now a held task was told by its error text, which app/by_hand.py wrote as
        # "cancelled by hand" or "cancelled by hand: <note>" (GLOB: case-sensitive, as it was).
        """
        ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1));
        UPDATE tasks SET held = 1
            WHERE status = 'cancelled' AND error GLOB 'cancelled by hand*';
        """,
    ),
    (
        3,
        "attempts.finish_reason; task_events.output: a person's output kept in the history",
        # finish_reason: why the model stopped (stop, length, tool_calls, content_filter,
        # unknown); NULL for attempts recorded before it was known. task_events.output: the
        # output given with a completion by hand. A held completed task (tasks.held = 1 with
        # status 'completed') is one completed by hand; no such row existed before.
        """
        ALTER TABLE attempts ADD COLUMN finish_reason TEXT;
        ALTER TABLE task_events ADD COLUMN output TEXT;
        """,
    ),
    (
        4,
        "the call journal, and attempts.cached",
        # A request (journal_requests) is keyed by the content hash of what determines its
        # answer and points at its conversation's last prefix; each prefix points at its parent
        # and its last message; a message is kept once by its hash. A call (journal_calls) is
        # one answer given in a run: from the provider, or from the journal (a cache hit, a
        # replay), which then repeats the answer it gave.
        """
        CREATE TABLE journal_messages (
            hash     TEXT PRIMARY KEY,
            role     TEXT NOT NULL,
            content  TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE journal_prefixes (
            hash     TEXT PRIMARY KEY,
            parent   TEXT,
            message  TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE journal_requests (
            key       TEXT PRIMARY KEY,
            provider  TEXT NOT NULL,
            model     TEXT NOT NULL,
            base_url  TEXT,
            params    TEXT NOT NULL,
            prefix    TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE journal_calls (
            id                 INTEGER PRIMARY KEY,
            key                TEXT NOT NULL,
            project_id         INTEGER NOT NULL REFERENCES projects(id),
            run_id             INTEGER REFERENCES runs(id),
            task_id            TEXT,
            at                 REAL NOT NULL,
            source             TEXT NOT NULL CHECK (source IN ('provider', 'cache', 'replay')),
            text               TEXT NOT NULL,
            tool_calls         TEXT,
            model              TEXT,
            prompt_tokens      INTEGER,
            completion_tokens  INTEGER,
            finish_reason      TEXT,
            response_id        TEXT,
            cost               REAL,
            latency_s          REAL
        );
        CREATE INDEX journal_calls_by_key ON journal_calls(key, project_id);
        ALTER TABLE attempts ADD COLUMN cached INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1));
        """,
    ),
    (
        5,
        "the agent loop: attempts.turn and attempts.tool_calls, tool_calls",
        # A model turn of an agent loop that asked for tool calls is an attempt of its own:
        # turn is its number in the loop (1, 2, ...; NULL for any other attempt), tool_calls
        # the calls it asked for (JSON: [{id, name, arguments}]). tool_calls rows are the calls
        # run: the turn's attempt, the call's id, its result (whole, masked: a resumed loop sends
        # it again), error flag and duration. A loop killed mid-way resumes from these rows.
        """
        ALTER TABLE attempts ADD COLUMN turn INTEGER;
        ALTER TABLE attempts ADD COLUMN tool_calls TEXT;
        CREATE TABLE tool_calls (
            id          INTEGER PRIMARY KEY,
            attempt_id  INTEGER NOT NULL REFERENCES attempts(id),
            call_id     TEXT NOT NULL,
            name        TEXT NOT NULL,
            arguments   TEXT NOT NULL,
            result      TEXT NOT NULL,
            is_error    INTEGER NOT NULL DEFAULT 0 CHECK (is_error IN (0, 1)),
            duration_s  REAL,
            toolset     TEXT,
            at          REAL NOT NULL,
            UNIQUE (attempt_id, call_id)
        );
        """,
    ),
    (
        7,
        "tasks.value, attempts.value: a typed task's validated output",
        # The JSON text of the value a task with an output_schema produced (its output is the
        # same JSON, pretty); NULL for every other task and attempt. tasks.value is the value
        # of the task's last success, cleared with it. (6 is another feature's number.)
        """
        ALTER TABLE tasks ADD COLUMN value TEXT;
        ALTER TABLE attempts ADD COLUMN value TEXT;
        """,
    ),
)

#: The schema version this code writes (the number of the last migration).
SCHEMA_VERSION = MIGRATIONS[-1][0]

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
)
"""


def read_header(path: Path) -> tuple[int, int] | None:
    """``(application_id, user_version)`` from the file header; None for an empty file.

    Raises :class:`StateError` when the file is not an SQLite database at all.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as e:
        raise StateError(f"{path}: cannot read the state database: {e.strerror}") from e
    if not header:
        return None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StateError(
            f"{path}: not a coditect state database (not an SQLite file: corrupt or foreign); "
            "left untouched"
        )
    return int.from_bytes(header[68:72], "big"), int.from_bytes(header[60:64], "big")


def open_database(
    path: Path,
    *,
    readonly: bool = False,
    synchronous: str = "NORMAL",
    busy_timeout_s: float = 5.0,
    check_integrity: bool = True,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    before_migrate: Callable[[Path], object] | None = None,
) -> sqlite3.Connection:
    """Open (creating if allowed) the state database at ``path``, migrated to the latest schema.

    The connection is in autocommit mode (``isolation_level=None``): callers issue ``BEGIN``
    themselves. It is usable from any thread, one at a time. ``readonly`` opens for reading and
    never creates, migrates or writes. ``before_migrate(path)`` is called before an existing
    database is migrated (the store backs it up there); if it raises, nothing is migrated.
    """
    path = Path(path)
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    created = False
    if not path.exists():
        if readonly:
            raise StateError(f"{path}: no state database here")
        _create(path, migrations, busy_timeout_s)
        created = True
    header = read_header(path)
    if header is not None:
        app_id, _ = header
        if app_id != APPLICATION_ID:
            raise StateError(
                f"{path}: not a coditect state database (SQLite application_id "
                f"{app_id:#010x}, expected {APPLICATION_ID:#010x}); left untouched"
            )
    latest = migrations[-1][0]
    base_uri = path.resolve().as_uri()
    side_files = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    absent = [p for p in side_files if not p.exists()]
    conn: sqlite3.Connection | None = None
    try:
        # A read-only probe first: it cannot write, so a refused file keeps every byte
        # (a read-write connection would checkpoint a leftover WAL into it when closed).
        probe = f"{base_uri}?mode=ro"
        if readonly and not Path(f"{path}-wal").exists() and not os.access(path.parent, os.W_OK):
            # A folder nobody can write to: no writer can be at work (it would need its WAL
            # here), and SQLite could not make the shared-memory file a WAL reader needs.
            probe += "&immutable=1"
        conn = _connect(probe, busy_timeout_s)
        applied = _applied_versions(conn) if header is not None else set()
        version = max(applied, default=0)
        missing = [number for number, _, _ in migrations if number not in applied]
        if version > latest:
            raise StateError(
                f"{path}: written by a newer coditect-core (schema version {version}, this "
                f"version reads up to {latest}); upgrade coditect-core. Left untouched"
            )
        if check_integrity and header is not None:
            problem = conn.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise StateError(
                    f"{path}: the state database is corrupt ({problem}); left untouched"
                )
        if readonly:
            if missing:
                raise StateError(
                    f"{path}: schema version {version} lacks migration(s) "
                    f"{', '.join(map(str, missing))} of {latest}; "
                    "open it for writing once to migrate it"
                )
        else:
            conn.close()
            conn = _connect(f"{base_uri}?mode=rw", busy_timeout_s)
            if missing:
                if before_migrate is not None and not created:
                    before_migrate(path)
                _migrate(conn, path, migrations)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        if created:
            _restrict_mode(path)
        return conn
    except sqlite3.DatabaseError as e:
        _abandon(conn, absent)
        raise StateError(
            f"{path}: the state database is corrupt or unreadable ({e}); left untouched"
        ) from e
    except BaseException:
        _abandon(conn, absent)
        raise


def open_memory_database(*, migrations: tuple[Migration, ...] = MIGRATIONS) -> sqlite3.Connection:
    """A new private database in memory, with the latest schema: the same tables, the same
    SQL, no file. Only the returned connection sees it (readers go through it too)."""
    conn = _connect(MEMORY, 0.0)
    try:
        _migrate(conn, Path(MEMORY), migrations)
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _abandon(conn: sqlite3.Connection | None, created: list[Path]) -> None:
    """Close a refused database and remove the ``-wal``/``-shm`` files opening it created."""
    if conn is not None:
        conn.close()
    for side in created:
        with contextlib.suppress(FileNotFoundError):
            if side.stat().st_size == 0 or side.name.endswith("-shm"):
                side.unlink()


def _connect(uri: str, busy_timeout_s: float) -> sqlite3.Connection:
    return sqlite3.connect(
        uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )


def _create(path: Path, migrations: tuple[Migration, ...], busy_timeout_s: float) -> None:
    """Create the directory (0700) and the database, complete, with mode 0600 (see the module
    docstring). If another process creates ``path`` meanwhile, its file is kept."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise StateError(f"{path}: cannot create the state database: {e.strerror}") from e
    try:
        _restrict_mode(temp)
        conn = _connect(f"{temp.resolve().as_uri()}?mode=rw", busy_timeout_s)
        try:
            _migrate(conn, path, migrations)
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()  # the last connection: the WAL is folded in and removed
        _publish(temp, path)
    except sqlite3.Error as e:
        raise StateError(f"{path}: cannot create the state database: {e}") from e
    except OSError as e:
        raise StateError(f"{path}: cannot create the state database: {e.strerror}") from e
    finally:
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _publish(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless ``path`` exists (then another process won)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        return
    except OSError:  # a file system without hard links: rename, which could replace a file
        if not path.exists():  # created in the last moment; the window is this line
            os.rename(temp, path)


def _restrict_mode(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if not has_table:
        return set()
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}


def _migrate(conn: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...]) -> None:
    """Apply the missing migrations in one transaction (all or none), in order of number: also
    one numbered below a migration already applied (two branches' migrations, merged)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        applied = _applied_versions(conn)
        if not applied:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(_MIGRATIONS_TABLE)
        for number, name, script in migrations:
            if number in applied:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, time.time()),
            )
            logger.info("%s: applied state migration %d (%s)", path, number, name)
        conn.execute(f"PRAGMA user_version={max([migrations[-1][0], *applied])}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit implicitly)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements

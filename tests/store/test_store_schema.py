"""The state database file: creation, permissions, WAL, migrations, and files it must refuse."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from coditect_core.errors import StateError
from coditect_core.store import StateStore, default_state_path, schema
from coditect_core.store.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    open_database,
    read_header,
)

V2 = (*MIGRATIONS, (SCHEMA_VERSION + 1, "test: a later column", "ALTER TABLE tasks ADD COLUMN x"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_default_path_is_beside_the_project(tmp_path: Path) -> None:
    assert default_state_path(tmp_path) == tmp_path / ".coditect" / "state.db"


def test_new_database_has_schema_identity_wal_and_private_modes(tmp_path: Path) -> None:
    path = default_state_path(tmp_path)
    with StateStore.open(path) as store:
        assert store.path == path
        conn = sqlite3.connect(path)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"projects", "runs", "tasks", "task_events", "attempts", "schema_migrations"} <= (
            tables
        )
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == (
            SCHEMA_VERSION
        )
        conn.close()
        assert _mode(path) == 0o600
        assert _mode(Path(f"{path}-wal")) == 0o600
        assert _mode(Path(f"{path}-shm")) == 0o600
        assert _mode(path.parent) == 0o700
    assert read_header(path) == (APPLICATION_ID, SCHEMA_VERSION)


def test_private_mode_holds_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with StateStore.open(tmp_path / "state.db"):
            pass
    finally:
        os.umask(old)
    assert _mode(tmp_path / "state.db") == 0o600


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "state.db")
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO runs(project_id, started_at, status) VALUES (42, 0, 'running')")
    conn.close()


def test_migrates_an_older_database_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = open_database(path)  # the current schema plays "old" for a migration 2 added here
    old.execute("INSERT INTO projects(name, created_at) VALUES ('kept', 1.0)")
    old.close()

    conn = open_database(path, migrations=V2)
    assert conn.execute("SELECT name FROM projects").fetchall() == [("kept",)]
    applied = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [v for v, _ in applied] == [m[0] for m in V2]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    assert "x" in columns
    assert conn.execute("PRAGMA user_version").fetchone()[0] == V2[-1][0]
    conn.close()
    # Opening again applies nothing twice.
    again = open_database(path, migrations=V2)
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(V2)
    again.close()


def test_migration_2_backfills_held_from_the_error_of_a_cancel_by_hand(tmp_path: Path) -> None:
    """A database of schema version 1 (built with that version's SQL), where a task held by
    hand was told by its error text, gets ``tasks.held``: 1 exactly for those tasks."""
    path = tmp_path / "state.db"
    old = open_database(path, migrations=MIGRATIONS[:1])
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    old.execute("INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0)")
    tasks = [
        ("HAND", "cancelled", "cancelled by hand: out of scope"),  # coditect task cancel -n
        ("BARE", "cancelled", "cancelled by hand"),  # coditect task cancel
        ("RUN", "cancelled", "cancelled: the run was stopped"),  # a run's own cancel
        ("NONE", "cancelled", None),
        ("CASE", "cancelled", "Cancelled by hand"),  # the old test was case-sensitive
        ("FAILED", "failed", "cancelled by hand: later failed"),  # not cancelled any more
        ("DONE", "completed", None),
    ]
    old.executemany(
        "INSERT INTO tasks(project_id, task_id, status, error, updated_at) VALUES (1, ?, ?, ?, 2)",
        tasks,
    )
    old.close()

    with StateStore.open(path) as store:
        records = {t.task_id: t for t in store.snapshot("proj").tasks}
    assert {tid for tid, t in records.items() if t.held} == {"HAND", "BARE"}
    assert {tid: (t.status, t.error) for tid, t in records.items()} == {
        tid: (status, error) for tid, status, error in tasks
    }
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    assert version == SCHEMA_VERSION
    with pytest.raises(sqlite3.IntegrityError):  # 0 or 1, nothing else
        conn.execute("UPDATE tasks SET held = 2 WHERE task_id = 'DONE'")
    conn.close()


def test_migration_3_adds_finish_reason_and_the_history_output_to_a_version_2_database(
    tmp_path: Path,
) -> None:
    """A database of schema version 2 (built with those migrations' SQL) keeps its rows and
    gets ``attempts.finish_reason`` and ``task_events.output`` (NULL: not known then)."""
    path = tmp_path / "state.db"
    old = open_database(path, migrations=MIGRATIONS[:2])
    assert old.execute("PRAGMA user_version").fetchone()[0] == 2
    old.executescript(
        """
        INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0);
        INSERT INTO runs(id, project_id, started_at, status) VALUES (1, 1, 1.0, 'succeeded');
        INSERT INTO tasks(id, project_id, task_id, status, output, updated_at, success_seq)
            VALUES (1, 1, 'A', 'completed', 'old reply', 2.0, 1);
        INSERT INTO task_events(id, task_ref, run_id, status, at, note)
            VALUES (1, 1, 1, 'completed', 2.0, 'done');
        INSERT INTO attempts(run_id, task_ref, started_at, status, completion_tokens, output)
            VALUES (1, 1, 1.0, 'succeeded', 7, 'old reply');
        """
    )
    old.close()

    with StateStore.open(path) as store:
        attempts = store.attempts("proj", task_id="A")
        history = store.task_history("proj", "A")
        assert store.succeeded_tasks("proj")["A"].output == "old reply"
    assert [(a.output, a.completion_tokens, a.finish_reason) for a in attempts] == [
        ("old reply", 7, None)
    ]
    assert [(e.note, e.output) for e in history] == [("done", None)]
    conn = sqlite3.connect(path)
    assert 3 in {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # 4: the journal
    conn.close()


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_database(path).close()
    broken = (*MIGRATIONS, (SCHEMA_VERSION + 1, "broken", "ALTER TABLE nowhere ADD COLUMN y"))
    with pytest.raises(StateError):
        open_database(path, migrations=broken)
    conn = open_database(path)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == (
        SCHEMA_VERSION
    )
    conn.close()


def test_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_database(path, migrations=V2).close()
    before = _files(tmp_path)
    with pytest.raises(StateError, match="newer coditect-core") as info:
        StateStore.open(path)
    assert str(path) in str(info.value)
    assert _files(tmp_path) == before


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no state database"):
        StateStore.open(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    with StateStore.open(path):
        pass
    assert read_header(path) == (APPLICATION_ID, SCHEMA_VERSION)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file, not a database\n" * 20, "not an SQLite file"),
        (os.urandom(4096), "not an SQLite file"),
        (b"SQLite format 3\x00" + b"\x00" * 50, "not an SQLite file"),  # header cut short
    ],
    ids=["text", "random", "truncated-header"],
)
def test_non_sqlite_file_is_refused_untouched(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateError, match=message) as info:
        StateStore.open(path)
    assert str(path) in str(info.value)
    assert _files(tmp_path) == {"state.db": content}


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes(body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('somebody else''s data')")
    conn.commit()
    conn.close()
    before = _files(tmp_path)
    with pytest.raises(StateError, match="application_id 0x00000000") as info:
        StateStore.open(path)
    assert str(path) in str(info.value)
    assert _files(tmp_path) == before


def test_foreign_wal_database_is_refused_without_checkpointing_it(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t(x)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    before = _files(tmp_path)  # main file, -wal and -shm, with the WAL not checkpointed
    with pytest.raises(StateError, match="not a coditect state database"):
        StateStore.open(path)
    assert _files(tmp_path) == before
    writer.close()


def test_corrupt_coditect_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = open_database(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO projects(name, created_at) VALUES (?, 0)",
        [(f"p{i}" * 40,) for i in range(400)],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for leftover in ("state.db-wal", "state.db-shm"):
        (tmp_path / leftover).unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 : 4 * 4096] = os.urandom(2 * 4096)  # pages 3 and 4: table and index pages
    path.write_bytes(bytes(data))
    before = _files(tmp_path)
    with pytest.raises(StateError, match="corrupt") as info:
        StateStore.open(path)
    assert str(path) in str(info.value)
    assert _files(tmp_path) == before


def test_truncated_coditect_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore.open(path):
        pass
    data = path.read_bytes()
    path.write_bytes(data[: 4096 + 100])
    with pytest.raises(StateError) as info:
        StateStore.open(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == data[: 4096 + 100]


def test_synchronous_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_database(tmp_path / "state.db", synchronous="NORMAL; DROP TABLE runs")


def test_a_reader_never_sees_a_half_created_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_state_path(tmp_path)
    seen: list[bool] = []
    migrate = schema._migrate

    def migrate_and_look(conn: sqlite3.Connection, at: Path, migrations: tuple) -> None:
        # While the schema is being written, a reader finds nothing at the path (not an empty
        # file, nor "schema version 0").
        seen.append(path.exists())
        with pytest.raises(StateError, match="no state database here"):
            open_database(path, readonly=True)
        migrate(conn, at, migrations)
        seen.append(path.exists())

    monkeypatch.setattr(schema, "_migrate", migrate_and_look)
    with StateStore.open(path):
        assert read_header(path) == (APPLICATION_ID, SCHEMA_VERSION)
    assert seen == [False, False]
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith("state.db")] == []


def test_a_failed_creation_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = ((1, "broken", "CREATE TABLE runs (id INTEGER PRIMARY KEY,"),)
    with pytest.raises(StateError, match="cannot create the state database"):
        open_database(tmp_path / "state.db", migrations=broken)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_creators_share_one_complete_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            open_database(path).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    assert {p.name for p in tmp_path.iterdir()} <= {"state.db", "state.db-wal", "state.db-shm"}


def test_migration_5_adds_the_agent_loop_to_a_version_4_database(tmp_path: Path) -> None:
    """A database of schema version 4 keeps its attempts (``turn`` and ``tool_calls`` NULL: not
    a loop's turn) and gets the ``tool_calls`` table, which records a loop's calls."""
    from coditect_core.store.records import ToolCallRow

    path = tmp_path / "state.db"
    old = open_database(path, migrations=MIGRATIONS[:4])
    assert old.execute("PRAGMA user_version").fetchone()[0] == 4
    old.executescript(
        """
        INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0);
        INSERT INTO runs(id, project_id, started_at, status) VALUES (1, 1, 1.0, 'succeeded');
        INSERT INTO tasks(id, project_id, task_id, status, output, updated_at, success_seq)
            VALUES (1, 1, 'A', 'completed', 'old reply', 2.0, 1);
        INSERT INTO attempts(run_id, task_ref, started_at, status, completion_tokens, output)
            VALUES (1, 1, 1.0, 'succeeded', 7, 'old reply');
        """
    )
    old.close()
    with StateStore.open(path) as store:
        (attempt,) = store.attempts("proj", task_id="A")
        assert (attempt.output, attempt.turn, attempt.tool_calls) == ("old reply", None, None)
        assert store.tool_calls("proj") == []
        store.call_sync(
            lambda conn: conn.execute(
                "INSERT INTO tool_calls(attempt_id, call_id, name, arguments, result, at) "
                "VALUES (?, 'c1', 'add', '{}', '5', 3.0)",
                (attempt.attempt_id,),
            ),
            solo=True,
        )
        assert store.tool_calls("proj", task_id="A") == [
            ToolCallRow("c1", "add", "{}", "5", attempt_id=attempt.attempt_id, task_id="A")
        ]
    conn = sqlite3.connect(path)
    assert 5 in {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()

"""Migration 7: ``tasks.value`` and ``attempts.value`` (a typed task's validated output), added
to a database of the latest schema before it; the value written with a success, read back as
data, and cleared when the task is recorded again without one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from coditect_core.orchestration.task import TaskStatus
from coditect_core.store import StateStore
from coditect_core.store.records import AttemptOutcome
from coditect_core.store.schema import MIGRATIONS, SCHEMA_VERSION, open_database

BEFORE = tuple(m for m in MIGRATIONS if m[0] < 7)


def test_migration_7_adds_the_value_columns_and_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = open_database(path, migrations=BEFORE)
    assert old.execute("PRAGMA user_version").fetchone()[0] == BEFORE[-1][0]
    old.executescript(
        """
        INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0);
        INSERT INTO runs(id, project_id, started_at, status) VALUES (1, 1, 1.0, 'succeeded');
        INSERT INTO tasks(id, project_id, task_id, status, output, updated_at, success_seq)
            VALUES (1, 1, 'A', 'completed', 'old reply', 2.0, 1);
        INSERT INTO attempts(run_id, task_ref, started_at, status, output)
            VALUES (1, 1, 1.0, 'succeeded', 'old reply');
        """
    )
    old.close()
    with StateStore.open(path) as store:
        (task,) = store.snapshot("proj").tasks
        assert (task.output, task.value) == ("old reply", None)
        assert store.succeeded_tasks("proj")["A"].value is None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert 7 in {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for table in ("tasks", "attempts"):
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert "value" in columns
    finally:
        conn.close()


async def test_a_success_stores_its_value_and_a_later_failure_clears_it(tmp_path: Path) -> None:
    value = {"fruit": "apple", "count": 3}
    path = tmp_path / "state.db"
    with StateStore.open(path) as store:
        run = await store.begin_run("proj")
        await store.define_tasks(run.run_id, {"A": "h-A"})
        attempt = await store.task_started(run.run_id, "A", agent="a")
        outcome = AttemptOutcome("succeeded", output=json.dumps(value), value=json.dumps(value))
        await store.task_finished(
            run.run_id, "A", TaskStatus.COMPLETED, attempt_id=attempt, attempt=outcome
        )
        (task,) = store.snapshot("proj").tasks
        assert task.value == value
        assert store.succeeded_tasks("proj")["A"].value == value
        await store.task_finished(run.run_id, "A", TaskStatus.FAILED, error="later")
        (task,) = store.snapshot("proj").tasks
        assert task.value is None

"""Migration 6 and its records: a writing task's acceptance check runs and its change (branch,
commit, files, lines, merge)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coditect_core.errors import StateError
from coditect_core.store import NullRecorder, StateStore
from coditect_core.store.schema import MIGRATIONS, SCHEMA_VERSION, open_database

pytestmark = pytest.mark.timeout(60)

CANARY = "sk-changes-canary-0123456789"


def test_the_latest_database_before_6_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = open_database(path, migrations=tuple(m for m in MIGRATIONS if m[0] < 6))
    old.execute("INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0)")
    old.execute(
        "INSERT INTO tasks(id, project_id, task_id, status, updated_at) "
        "VALUES (1, 1, 'A', 'completed', 1)"
    )
    old.close()
    with StateStore.open(path) as store:
        assert [t.task_id for t in store.snapshot("proj").tasks] == ["A"]
        assert store.check_runs("proj") == []
        assert store.task_changes("proj") == []
    conn = sqlite3.connect(path)
    try:
        versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        assert 6 in versions
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        with pytest.raises(sqlite3.IntegrityError):  # timed_out is a flag
            conn.execute(
                "INSERT INTO check_runs(task_ref, attempt, command, timed_out, at) "
                "VALUES (1, 1, 'x', 2, 1.0)"
            )
    finally:
        conn.close()


async def test_check_runs_and_a_merged_change_are_recorded_masked(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        store.add_secrets(CANARY)
        run = await store.begin_run("proj", options={})
        await store.define_tasks(run.run_id, {"A": "h", "B": "h2"})
        await store.record_check_run(
            run.run_id, "A", attempt=1, command="pytest -q", exit_code=1,
            output=f"1 failed (key {CANARY})", duration_s=0.5,
        )  # fmt: skip
        await store.record_check_run(
            run.run_id, "A", attempt=2, command="pytest -q", exit_code=None, timed_out=True,
        )  # fmt: skip
        change = await store.record_task_change(
            run.run_id, "A", branch="coditect/proj-tasks/A", start_commit="s1", commit="c1",
            files=[("a.py", 3, 1), ("img.png", None, None)], diff=f"+A = '{CANARY}'\n",
        )  # fmt: skip
        nothing = await store.record_task_change(
            run.run_id, "B", branch="coditect/proj-tasks/B", start_commit="s2", commit=None
        )
        await store.record_merge(change, "m1")
        with pytest.raises(StateError, match="unknown"):
            await store.record_merge(9999, "m2")
        await store.finish_run(run.run_id, "succeeded")

        first, second = store.check_runs("proj", "A")
        assert (first.attempt, first.command, first.exit_code, first.duration_s) == (
            1, "pytest -q", 1, 0.5,
        )  # fmt: skip
        assert not first.passed
        assert CANARY not in (first.output or "")
        assert "1 failed" in (first.output or "")
        assert (second.timed_out, second.exit_code, second.passed) == (True, None, False)
        assert store.check_runs("proj", "B") == []

        (a,) = store.task_changes("proj", "A")
        assert (a.branch, a.start_commit, a.commit, a.merge_commit) == (
            "coditect/proj-tasks/A", "s1", "c1", "m1",
        )  # fmt: skip
        assert a.files == (("a.py", 3, 1), ("img.png", None, None))
        assert (a.files_changed, a.lines_added, a.lines_removed) == (2, 3, 1)
        assert a.merged_at is not None
        assert a.diff is not None
        assert a.diff.startswith("+A = ")
        assert CANARY not in a.diff
        (b,) = store.task_changes("proj", "B")
        assert (b.change_id, b.commit, b.files, b.merge_commit) == (nothing, None, (), None)
        assert [c.task_id for c in store.task_changes("proj")] == ["A", "B"]


async def test_the_null_recorder_takes_the_same_calls() -> None:
    recorder = NullRecorder()
    run = await recorder.begin_run("proj")
    await recorder.record_check_run(run.run_id, "A", attempt=1, command="x", exit_code=0)
    change = await recorder.record_task_change(
        run.run_id, "A", branch="b", start_commit=None, commit=None
    )
    await recorder.record_merge(change, "m")

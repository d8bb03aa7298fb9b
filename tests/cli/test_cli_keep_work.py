"""Work a user paid for or a person wrote is never lost (issue 18), through the real ``coditect``
command in child processes, checking the state database afterwards:

* ``run --only T --restart`` restarts only T and what depends on it; ``task rerun``;
* ``task complete`` without ``--output``/``--note`` refuses to replace an output (``--force``);
* a task completed by hand while its upstream is pending stays completed (kept), its dependents
  get its output, and a later rerun leaves the person's output in the history.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_projects import fake_project, run_cli

pytestmark = pytest.mark.timeout(120)


def _db(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def _rows(project: Path) -> dict[str, tuple[str, str | None, int]]:
    """task id -> (status, output, held), read straight from the database."""
    with sqlite3.connect(_db(project)) as conn:
        rows = conn.execute("SELECT task_id, status, output, held FROM tasks").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _attempts(project: Path) -> dict[str, int]:
    with sqlite3.connect(_db(project)) as conn:
        rows = conn.execute(
            "SELECT t.task_id, count(a.id) FROM tasks t LEFT JOIN attempts a ON a.task_ref = t.id "
            "GROUP BY t.task_id"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def _run(project: Path, *args: str, code: int = 0) -> dict:
    done = run_cli("run", project, "--json", *args)
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout)


# -- 1. --only --restart, task rerun ------------------------------------------------------------


def test_restart_with_only_restarts_the_named_task_and_its_dependents_only(
    tmp_path: Path,
) -> None:
    project = fake_project(tmp_path)
    _run(project)
    before = _attempts(project)
    assert set(before.values()) == {1}

    preview = _run(project, "--only", "STEP-4.5", "--restart", "--dry-run")
    assert preview["run"] == ["STEP-4.5"]  # its upstream is done: skipped, not paid again

    outcome = _run(project, "--only", "STEP-4.5", "--restart")
    assert outcome["ran"] == ["STEP-4.5"]
    after = _attempts(project)
    assert after["STEP-4.5"] == 2
    assert {t: n for t, n in after.items() if t != "STEP-4.5"} == {
        t: 1 for t in before if t != "STEP-4.5"
    }
    rows = _rows(project)
    # Only its dependent waits; the unrelated tasks keep their results.
    assert {t for t, r in rows.items() if r[0] != "completed"} == {"STEP-4.7"}

    nxt = _run(project)
    assert nxt["ran"] == ["STEP-4.7"]
    assert all(r[0] == "completed" for r in _rows(project).values())


def test_run_help_says_what_restart_with_only_restarts() -> None:
    done = run_cli("run", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "with --only, only the named tasks and every task that depends on them" in text


def test_task_rerun_marks_the_task_and_with_the_flag_its_dependents(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    _run(project)
    done = run_cli("task", "rerun", project, "STEP-4.4")
    assert done.returncode == 0, done.stderr
    assert "the next run runs it" in done.stdout
    rows = _rows(project)
    assert rows["STEP-4.4"][0] == "pending"
    assert rows["STEP-4.7"][0] == "completed"
    outcome = _run(project)
    assert outcome["ran"] == ["STEP-4.4", "STEP-4.7"]  # the dependent follows its new input

    done = run_cli("task", "rerun", project, "STEP-4.3", "--with-dependents", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["dependents"] == ["STEP-4.4", "STEP-4.5", "STEP-4.6", "STEP-4.7"]
    rows = _rows(project)
    assert {t for t, r in rows.items() if r[0] == "pending"} == {
        "STEP-4.3",
        "STEP-4.4",
        "STEP-4.5",
        "STEP-4.6",
        "STEP-4.7",
    }
    assert _run(project)["ran"] == ["STEP-4.3", "STEP-4.4", "STEP-4.5", "STEP-4.6", "STEP-4.7"]


def test_task_rerun_of_an_unknown_task_writes_nothing(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    done = run_cli("task", "rerun", project, "STEP-4.55")
    assert done.returncode == 2
    assert "STEP-4.5" in done.stderr  # did you mean
    assert not _db(project).exists()


# -- 2. a person's work ---------------------------------------------------------------------------


def test_complete_without_output_or_note_refuses_to_replace_an_output(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    _run(project)
    rows = _rows(project)
    with sqlite3.connect(_db(project)) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    done = run_cli("task", "complete", project, "STEP-4.3")
    assert done.returncode == 2
    text = " ".join(done.stderr.split())
    assert "already has an output" in text
    assert "--force" in text
    assert _rows(project) == rows  # nothing changed
    with sqlite3.connect(_db(project)) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == runs

    done = run_cli("task", "complete", project, "STEP-4.3", "--force")
    assert done.returncode == 0, done.stderr
    assert _rows(project)["STEP-4.3"][1] is None


def test_complete_on_a_task_without_output_needs_no_force(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    done = run_cli("task", "complete", project, "STEP-4.1")
    assert done.returncode == 0, done.stderr


def test_a_task_completed_by_hand_before_its_upstream_stays_completed(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    mine = tmp_path / "b.txt"
    mine.write_text("THE PERSON'S B")
    done = run_cli("task", "complete", project, "STEP-4.2", "-o", mine)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "STEP-4.1" in text  # says its upstream is not done and still runs
    assert "the next run skips it" not in text
    assert "kept" in text
    assert "task rerun" in text

    dry = run_cli("run", project, "--dry-run")
    assert "would skip STEP-4.2: kept: completed by hand" in dry.stdout
    assert "would run  STEP-4.1" in dry.stdout

    outcome = _run(project)
    assert "STEP-4.2" not in outcome["ran"]
    assert "STEP-4.1" in outcome["ran"]
    rows = _rows(project)
    assert rows["STEP-4.2"] == ("completed", "THE PERSON'S B", 1)
    assert _attempts(project)["STEP-4.2"] == 0  # never sent to its agent
    shown = run_cli("show", project, "STEP-4.3", "--json")
    assert "THE PERSON'S B" in json.loads(shown.stdout)["prompt"]
    # A second run keeps it too (its upstream succeeded after it: still kept).
    assert "STEP-4.2" not in _run(project)["ran"]

    status = run_cli("tasks", project)
    assert "completed (kept by hand)" in status.stdout


def test_a_rerun_replaces_a_persons_output_with_a_trace(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    mine = tmp_path / "b.txt"
    mine.write_text("THE PERSON'S B")
    assert run_cli("task", "complete", project, "STEP-4.2", "-o", mine).returncode == 0
    _run(project)
    assert run_cli("task", "rerun", project, "STEP-4.2").returncode == 0
    outcome = _run(project)
    assert "STEP-4.2" in outcome["ran"]
    status, output, held = _rows(project)["STEP-4.2"]
    assert (status, held) == ("completed", 0)
    assert output is not None
    assert output.startswith("fake reply to:")
    with sqlite3.connect(_db(project)) as conn:
        kept = conn.execute(
            "SELECT e.output FROM task_events e JOIN tasks t ON t.id = e.task_ref "
            "WHERE t.task_id = 'STEP-4.2' AND e.output IS NOT NULL"
        ).fetchall()
    assert kept == [("THE PERSON'S B",)]
    history = json.loads(run_cli("show", project, "STEP-4.2", "--json").stdout)["history"]
    assert any(e.get("output") == "THE PERSON'S B" for e in history)
    shown = run_cli("show", project, "STEP-4.2").stdout
    assert "output given then (replaced since)" in shown
    assert "THE PERSON'S B" in shown


def test_restart_replaces_a_persons_output_with_a_trace(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    mine = tmp_path / "b.txt"
    mine.write_text("THE PERSON'S B")
    assert run_cli("task", "complete", project, "STEP-4.2", "-o", mine).returncode == 0
    outcome = _run(project, "--restart")
    assert "STEP-4.2" in outcome["ran"]
    with sqlite3.connect(_db(project)) as conn:
        kept = conn.execute("SELECT output FROM task_events WHERE output IS NOT NULL").fetchall()
    assert kept == [("THE PERSON'S B",)]

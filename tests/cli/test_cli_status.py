"""``coditect status``, ``tasks``, ``show`` and ``next``: read-only views, plain and ``--json``.

Through Typer's runner on runs of the fake provider, and through real processes for what only
processes show: ``status`` read while another process runs the project, and ``status`` after a
run was SIGKILLed (it must not take the lock nor mark anything interrupted).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_projects import (
    QUICKSTART_GRAPH,
    coditect_argv,
    env,
    fake_project,
    run_cli,
    run_json,
    snapshot,
)
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
STATUS_KEYS = {
    "project", "file", "state", "state_exists", "tasks", "counts", "done", "running", "holder",
    "runs", "last_run", "in_flight", "ready", "held", "unknown_tasks",
}  # fmt: skip
TASK_KEYS = {
    "task_id", "title", "status", "agent", "priority", "dependencies", "attempts", "tokens",
    "updated_at", "error", "held", "kept", "truncated", "ready",
}  # fmt: skip


def invoke(*args: str | Path) -> dict:
    result = runner.invoke(app, [*map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """A fake project whose first run completed STEP-4.1 and STEP-4.2 only."""
    project = fake_project(tmp_path)
    result = runner.invoke(app, ["run", str(project), "--only", "STEP-4.2", "--json"])
    assert result.exit_code == 0, result.output
    return project


def test_never_run_project_reads_as_pending_and_creates_nothing(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    data = invoke("status", project)
    assert set(data) == STATUS_KEYS
    assert data["state_exists"] is False
    assert data["counts"] == {"pending": 7}
    assert data["ready"] == ["STEP-4.1"]
    assert data["last_run"] is None
    for command in ("tasks", "next"):
        invoke(command, project)
    invoke("show", project, "STEP-4.3")
    assert not (tmp_path / ".coditect").exists()


def test_status_counts_last_run_and_next(ran: Path) -> None:
    data = invoke("status", ran)
    assert data["counts"] == {"completed": 2, "pending": 5}
    assert data["done"] == 2
    assert data["tasks"] == 7
    assert data["last_run"]["status"] == "succeeded"
    assert data["running"] is False
    assert data["holder"] is None
    assert data["ready"] == ["STEP-4.3"]
    plain = runner.invoke(app, ["status", str(ran)])
    assert plain.exit_code == 0
    assert "2/7 completed" in plain.stdout
    assert "next: STEP-4.3" in plain.stdout


def test_tasks_lists_file_order_and_filters(ran: Path) -> None:
    data = invoke("tasks", ran)
    assert [t["task_id"] for t in data["tasks"]] == list(QUICKSTART_GRAPH)
    first = data["tasks"][0]
    assert set(first) == TASK_KEYS
    assert first["status"] == "completed"
    assert first["attempts"] == 1
    assert first["tokens"]["completion"] > 0
    pending = invoke("tasks", ran, "--status", "pending")
    assert len(pending["tasks"]) == 5
    ready = invoke("tasks", ran, "--status", "ready")
    assert [t["task_id"] for t in ready["tasks"]] == ["STEP-4.3"]
    bad = runner.invoke(app, ["tasks", str(ran), "--status", "done"])
    assert bad.exit_code == 2
    assert "--status 'done'" in bad.stderr


def test_show_prints_prompt_output_and_attempts(ran: Path) -> None:
    data = invoke("show", ran, "STEP-4.2")
    assert set(data) == TASK_KEYS | {
        "description", "dependents", "reason", "messages", "prompt", "output", "attempts",
        "history",
    }  # fmt: skip
    assert data["status"] == "completed"
    assert data["prompt"].startswith("# Task STEP-4.2: Step 4.2 of the plan")
    # The recorded output of its dependency is in its prompt, as the run passed it.
    step1 = invoke("show", ran, "STEP-4.1")["output"]
    assert step1.startswith("fake reply to: # Task STEP-4.1")
    assert step1 in data["prompt"]
    assert data["messages"][0]["role"] == "system"
    assert data["output"].startswith("fake reply to: # Task STEP-4.2")
    assert [a["status"] for a in data["attempts"]] == ["succeeded"]
    assert data["attempts"][0]["agent"] == "fake"
    assert [h["status"] for h in data["history"]] == ["pending", "in_progress", "completed"]
    assert data["dependents"] == ["STEP-4.3"]
    plain = runner.invoke(app, ["show", str(ran), "STEP-4.2"])
    assert plain.exit_code == 0
    for part in ("prompt: user", "# Task STEP-4.2", "output", "attempts (1)", "succeeded"):
        assert part in plain.stdout


def test_show_unknown_task_is_bad_input(ran: Path) -> None:
    result = runner.invoke(app, ["show", str(ran), "STEP-4.22"])
    assert result.exit_code == 2
    assert "task 'STEP-4.22' is not in the file (did you mean" in result.stderr


def test_next_lists_ready_tasks_after_each_run(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    assert [t["task_id"] for t in invoke("next", project)["ready"]] == ["STEP-4.1"]
    runner.invoke(app, ["run", str(project), "--only", "STEP-4.3"])
    ready = invoke("next", project)["ready"]
    assert [t["task_id"] for t in ready] == ["STEP-4.4", "STEP-4.5", "STEP-4.6"]
    assert ready[0]["reason"] == "not succeeded yet"
    runner.invoke(app, ["run", str(project)])
    data = invoke("next", project)
    assert set(data) == {"project", "ready", "awaiting_human", "held", "running"}
    assert data["ready"] == []
    plain = runner.invoke(app, ["next", str(project)])
    assert "every task is completed" in plain.stdout


def test_next_sees_a_changed_definition(ran: Path) -> None:
    text = ran.read_text().replace("Do step 4.1.", "Do step 4.1 again, differently.")
    ran.write_text(text)
    ready = invoke("next", ran)["ready"]
    assert [(t["task_id"], t["reason"]) for t in ready] == [("STEP-4.1", "definition changed")]


def test_status_from_another_process_while_a_run_writes(tmp_path: Path) -> None:
    project = fake_project(tmp_path, latency=1.0, name="watched")
    child = subprocess.Popen(
        [*coditect_argv(), "run", str(project), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    seen_running = False
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            done = run_cli("status", project, "--json")
            assert done.returncode == 0, done.stderr
            data = json.loads(done.stdout)
            # One consistent snapshot: the counts add up, and every attempt in flight belongs
            # to a task recorded as in progress.
            assert sum(data["counts"].values()) == 7
            in_progress = data["counts"].get("in_progress", 0)
            assert len(data["in_flight"]) == in_progress
            if data["running"]:
                seen_running = True
                assert data["holder"]["pid"] == child.pid
                assert data["last_run"]["status"] == "running"
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert seen_running
    assert json.loads(out)["counts"]["completed"] == 7
    assert run_json("status", project)["counts"] == {"completed": 7}


def test_status_after_a_killed_run_marks_nothing(tmp_path: Path) -> None:
    project = fake_project(tmp_path, latency=2.0, name="killed")
    db = tmp_path / ".coditect" / "state.db"
    child = subprocess.Popen(
        [*coditect_argv(), "run", str(project)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snap = snapshot(db, "killed")
            if snap is not None and snap.in_flight:
                break
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    before = db.read_bytes(), db.with_name("state.db-wal").read_bytes()
    data = run_json("status", project)
    assert data["running"] is False
    assert data["last_run"]["status"] == "running"
    assert [a["task_id"] for a in data["in_flight"]] == ["STEP-4.1"]
    plain = run_cli("status", project)
    assert "its process is gone" in plain.stdout
    for command in (("tasks",), ("next",), ("show", "STEP-4.1")):
        assert run_cli(*command[:1], project, *command[1:]).returncode == 0
    assert run_json("status", project)["last_run"]["status"] == "running"  # still
    # Nothing was written: the attempt is still recorded in flight, the files unchanged.
    assert (db.read_bytes(), db.with_name("state.db-wal").read_bytes()) == before
    with StateStore.open(db, readonly=True) as store:
        assert [a.status for a in store.attempts("killed")] == ["running"]


def test_an_unusable_state_file_is_bad_input(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    (tmp_path / ".coditect").mkdir()
    (tmp_path / ".coditect" / "state.db").write_bytes(b"not a database at all, " * 100)
    result = runner.invoke(app, ["status", str(project)])
    assert result.exit_code == 2
    assert str(tmp_path / ".coditect" / "state.db") in result.stderr
    assert (tmp_path / ".coditect" / "state.db").read_bytes().startswith(b"not a database")

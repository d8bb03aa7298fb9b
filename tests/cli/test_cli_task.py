"""``coditect task complete|fail|cancel|reset``: recorded in the store, respected by ``run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_projects import fake_project
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.store import StateStore
from coditect_core.store.lock import RunLock, lock_path_for

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()


def cli(*args: str | Path, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(app, [*map(str, args)], input=stdin)
    assert result.exit_code == code, result.output
    return result.stderr if code == 2 else result.stdout


def run(project: Path, code: int = 0) -> dict:
    return json.loads(cli("run", project, "--json", code=code))


def statuses(report: dict) -> dict[str, str]:
    return {row["task_id"]: row["status"] for row in report["tasks"]}


def attempts(project: Path, task_id: str) -> list:
    with StateStore.open(project.parent / ".coditect" / "state.db", readonly=True) as store:
        return store.attempts("quick-fake", task_id=task_id)


def test_complete_by_hand_is_skipped_and_its_output_passed_on(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    result = tmp_path / "result.md"
    result.write_text("THE HAND-WRITTEN RESULT")
    data = json.loads(cli("task", "complete", project, "STEP-4.1", "-o", result, "--json"))
    assert data == {
        "project": "quick-fake",
        "task_id": "STEP-4.1",
        "action": "complete",
        "previous_status": "pending",
        "status": "completed",
        "run_id": 1,
        "state": str(tmp_path / ".coditect" / "state.db"),
    }
    outcome = run(project)
    assert "STEP-4.1" in outcome["skipped"]
    assert "STEP-4.1" not in outcome["ran"]
    assert attempts(project, "STEP-4.1") == []  # never called
    shown = json.loads(cli("show", project, "STEP-4.2", "--json"))
    assert "THE HAND-WRITTEN RESULT" in shown["prompt"]
    assert shown["output"].startswith("fake reply to: # Task STEP-4.2")
    history = json.loads(cli("show", project, "STEP-4.1", "--json"))["history"]
    assert history[-1]["status"] == "completed"
    assert history[-1]["note"] == "completed by hand"


def test_complete_reads_output_from_stdin_and_note_is_kept(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    cli("task", "complete", project, "STEP-4.1", "--output", "-", "-n", "PR 12", stdin="piped")
    shown = json.loads(cli("show", project, "STEP-4.1", "--json"))
    assert shown["output"] == "piped"
    assert shown["history"][-1]["note"] == "completed by hand: PR 12"


def test_completing_again_replaces_output_and_reruns_dependents(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    run(project)
    cli("task", "complete", project, "STEP-4.6", "--note", "better by hand")
    outcome = run(project)
    assert outcome["ran"] == ["STEP-4.7"]
    assert outcome["reasons"]["STEP-4.7"] == "upstream STEP-4.6 succeeded after it"


def test_fail_by_hand_runs_the_task_again(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    run(project)
    out = cli("task", "fail", project, "STEP-4.5", "--note", "misses the tests")
    assert "completed -> failed" in out
    assert json.loads(cli("status", project, "--json"))["counts"]["failed"] == 1
    outcome = run(project)
    assert outcome["ran"] == ["STEP-4.5", "STEP-4.7"]
    assert len(attempts(project, "STEP-4.5")) == 2


def test_cancel_holds_the_task_until_reset(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    cli("task", "cancel", project, "STEP-4.5", "--note", "out of scope")
    status = json.loads(cli("status", project, "--json"))
    assert status["held"] == ["STEP-4.5"]
    dry = runner.invoke(app, ["run", str(project), "--dry-run", "--json"])
    assert "held: cancelled by hand" in json.loads(dry.stdout)["reasons"]["STEP-4.5"]
    for _ in range(2):  # held run after run
        report = run(project, code=1)
        got = statuses(report)
        assert got["STEP-4.5"] == "cancelled"
        assert got["STEP-4.7"] == "blocked"
        assert got["STEP-4.6"] == "completed"
        assert attempts(project, "STEP-4.5") == []
    shown = json.loads(cli("show", project, "STEP-4.5", "--json"))
    assert shown["held"] is True
    assert shown["error"] == "cancelled by hand: out of scope"
    assert json.loads(cli("next", project, "--json"))["held"] == ["STEP-4.5"]
    cli("task", "reset", project, "STEP-4.5")
    report = run(project)
    assert set(statuses(report).values()) == {"completed"}
    assert report["ran"] == ["STEP-4.5", "STEP-4.7"]


def test_restart_releases_a_held_task(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    cli("task", "cancel", project, "STEP-4.7")
    run(project, code=1)
    report = json.loads(cli("run", project, "--restart", "--json"))
    assert set(statuses(report).values()) == {"completed"}


def test_unknown_task_and_missing_output_file_are_bad_input(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    err = cli("task", "complete", project, "STEP-4.8", code=2)
    assert "task 'STEP-4.8' is not in the file" in err
    err = cli("task", "complete", project, "STEP-4.1", "-o", tmp_path / "nope.md", code=2)
    assert "nope.md: cannot read it" in err
    assert not (tmp_path / ".coditect").exists()


def test_refused_while_a_live_run_holds_the_project(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    run(project)
    db = tmp_path / ".coditect" / "state.db"
    lock = RunLock(lock_path_for(db, "quick-fake"), "quick-fake")
    lock.acquire(run_id=99)
    try:
        err = cli("task", "fail", project, "STEP-4.1", code=2)
    finally:
        lock.release()
    assert "is being run by PID" in err
    assert json.loads(cli("status", project, "--json"))["counts"] == {"completed": 7}

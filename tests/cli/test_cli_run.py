"""``coditect run`` as a real process: exit codes 0, 1, 2, 3 and 130 (SIGINT, then resumed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_projects import QUICKSTART_GRAPH, coditect_argv, env, fake_project, run_cli, snapshot

from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(120)

FAILING_SCRIPT = {
    "type": "custom",
    "interface": "script",
    "command": [sys.executable, "-c", "import sys; sys.exit(1)"],
}


def _state(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def test_all_done_exits_0_with_documented_json(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    done = run_cli("run", project, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for key in ("run_id", "skipped", "ran", "counts", "exit_code", "tasks", "ok"):
        assert key in data
    assert data["exit_code"] == 0
    assert data["ran"] == list(QUICKSTART_GRAPH)
    assert data["counts"]["completed"] == 7
    again = json.loads(run_cli("run", project, "--json").stdout)
    assert again["ran"] == []
    assert sorted(again["skipped"]) == sorted(QUICKSTART_GRAPH)


def test_plain_output_has_summary_table(tmp_path: Path) -> None:
    done = run_cli("run", fake_project(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "STEP-4.7" in done.stdout
    assert "7 completed" in done.stdout
    assert "started   STEP-4.1 on fake" in done.stderr  # plain lines: not a terminal


def test_failed_task_exits_1_and_blocks_dependents(tmp_path: Path) -> None:
    project = fake_project(
        tmp_path, agents={"broken": FAILING_SCRIPT}, task_agents={"STEP-4.5": "broken"}
    )
    done = run_cli("run", project, "--json")
    assert done.returncode == 1, done.stderr
    statuses = {row["task_id"]: row["status"] for row in json.loads(done.stdout)["tasks"]}
    assert statuses["STEP-4.5"] == "failed"
    assert statuses["STEP-4.7"] == "blocked"
    assert statuses["STEP-4.6"] == "completed"


def test_bad_input_exits_2_and_writes_no_state(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    done = run_cli("run", project, "--only", "STEP-9")
    assert done.returncode == 2
    assert "task 'STEP-9' was selected to run but is not in the file" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_task_for_a_person_exits_3_until_completed_by_hand(tmp_path: Path) -> None:
    project = fake_project(
        tmp_path,
        agents={"person": {"type": "custom", "interface": "interactive"}},
        task_agents={"STEP-4.7": "person"},
    )
    done = run_cli("run", project, "--json")
    assert done.returncode == 3, done.stderr
    statuses = {row["task_id"]: row["status"] for row in json.loads(done.stdout)["tasks"]}
    assert statuses["STEP-4.7"] == "awaiting_human"
    finished = run_cli("task", "complete", project, "STEP-4.7", "--note", "done by me")
    assert finished.returncode == 0, finished.stderr
    again = run_cli("run", project, "--json")
    assert again.returncode == 0, again.stderr
    assert "STEP-4.7" in json.loads(again.stdout)["skipped"]


def _wait_for_completed(db: Path, project: str, at_least: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        snap = snapshot(db, project)
        if snap is not None and snap.counts.get("completed", 0) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} tasks completed in time")


def test_sigint_exits_130_keeps_state_and_resumes(tmp_path: Path) -> None:
    project = fake_project(tmp_path, latency=0.6, name="slow-fake")
    child = subprocess.Popen(
        [*coditect_argv(), "run", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        _wait_for_completed(_state(project), "slow-fake", 1, time.monotonic() + 60)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert "interrupted: state saved" in err
    with StateStore.open(_state(project), readonly=True) as store:
        snap = store.snapshot("slow-fake")
        assert snap.runs[-1].status == "interrupted"
        assert "in_progress" not in snap.counts
        assert not snap.in_flight
        done_before = set(store.succeeded_tasks("slow-fake"))
    assert done_before
    assert done_before != set(QUICKSTART_GRAPH)
    resumed = run_cli("run", project, "--json")
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert set(data["skipped"]) == done_before
    assert set(data["ran"]) == set(QUICKSTART_GRAPH) - done_before

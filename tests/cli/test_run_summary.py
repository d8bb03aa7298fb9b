"""The end of ``coditect run`` as a real process: what happened and the exact command that goes on.

Failures with their error on one inert line and the blocked tasks grouped by what blocks them, a
task waiting on a person (the command that finishes it, where its prompt is; in ``status`` too),
a budget stop (the command that goes on), a truncated reply, Ctrl-C after ``--restart`` (the
command that resumes, without ``--restart``), and a big project listing only what did not simply
succeed. The same facts under ``"next"`` with ``--json``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_projects import coditect_argv, env, fake_project, run_cli, snapshot
from reliability_support import KEY
from stub_server import StubServer, reply

pytestmark = pytest.mark.timeout(120)

# A script agent that fails, its error carrying a newline and a terminal escape.
HOSTILE_FAILURE = {
    "type": "custom",
    "interface": "script",
    "command": [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('\\x1b[31mboom\\nsecond line'); sys.exit(1)",
    ],
}
PERSON = {"type": "custom", "interface": "interactive"}


def test_failed_task_on_one_inert_line_and_blocked_tasks_grouped(tmp_path: Path) -> None:
    project = fake_project(
        tmp_path, agents={"broken": HOSTILE_FAILURE}, task_agents={"STEP-4.3": "broken"}
    )
    done = run_cli("run", project)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    failed = [line for line in out.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1, out
    assert "STEP-4.3 on broken:" in failed[0]
    assert "\\x1b[31mboom second line" in failed[0]  # one line, the escape shown, not sent
    assert "\x1b" not in out
    blocked = [line for line in out.splitlines() if line.startswith("blocked ")]
    assert blocked == [
        "blocked   4 tasks blocked by STEP-4.3: STEP-4.4, STEP-4.5, STEP-4.6, STEP-4.7"
    ]
    assert f"run again (finished tasks are skipped): coditect run {project}" in out
    assert f"coditect show {project} STEP-4.3" in out

    data = json.loads(run_cli("run", project, "--json").stdout)["next"]
    assert data["failed"] == [
        {"task_id": "STEP-4.3", "agent": "broken", "error": data["failed"][0]["error"]}
    ]
    assert "boom\nsecond line" in data["failed"][0]["error"]  # exact in JSON
    assert data["blocked"] == [
        {"by": ["STEP-4.3"], "tasks": ["STEP-4.4", "STEP-4.5", "STEP-4.6", "STEP-4.7"], "count": 4}
    ]


def test_a_task_for_a_person_says_what_to_do_in_run_and_status(tmp_path: Path) -> None:
    project = fake_project(tmp_path, agents={"person": PERSON}, task_agents={"STEP-4.7": "person"})
    done = run_cli("run", project)
    assert done.returncode == 3, done.stderr
    complete = f"coditect task complete {project} STEP-4.7 -o FILE"
    prompt = f"coditect show {project} STEP-4.7"
    assert complete in done.stdout
    assert prompt in done.stdout
    # The prompt really is where the summary says.
    shown = run_cli("show", project, "STEP-4.7")
    assert "# Task STEP-4.7" in shown.stdout

    status = run_cli("status", project)
    assert status.returncode == 0, status.stderr
    assert complete in status.stdout
    assert prompt in status.stdout
    # A run does not finish a person's task: status does not advise one for it.
    assert "next: STEP-4.7" not in status.stdout
    waiting = json.loads(run_cli("status", project, "--json").stdout)["awaiting_human"]
    assert waiting == [
        {"task_id": "STEP-4.7", "complete_command": complete, "prompt_command": prompt}
    ]

    data = json.loads(run_cli("run", project, "--json").stdout)
    assert data["exit_code"] == 3
    assert data["next"]["awaiting_human"] == [
        {
            "task_id": "STEP-4.7",
            "agent": "person",
            "complete_command": complete,
            "prompt_command": prompt,
        }
    ]


def _stub_project(directory: Path, stub: StubServer, tasks: int = 4) -> Path:
    spec = {
        "project": "ends",
        "defaults": {"agent": "gpt", "max_concurrency": 1},
        "agents": {
            "gpt": {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": stub.openai_url,
                "timeout": 30,
            }
        },
        "tasks": [
            {"id": f"T{i}", "title": f"task {i}", "description": "Say hi."} for i in range(tasks)
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_budget_stop_gives_the_command_that_goes_on_without_restart(tmp_path: Path) -> None:
    with StubServer() as stub:
        project = _stub_project(tmp_path, stub)
        keys = {"OPENAI_API_KEY": KEY}
        assert run_cli("run", project, extra_env=keys).returncode == 0
        done = run_cli("run", project, "--restart", "--max-tokens", "1", extra_env=keys)
        assert done.returncode == 1, done.stderr
        go_on = f"coditect run {project} --max-tokens 1"
        said = "budget reached: 3 task(s) not started. Go on (each run has a budget of its own)"
        assert f"{said}: {go_on}\n" in done.stdout
        assert f"to go on, run: {go_on} (" in done.stderr
        assert "--restart" not in done.stdout + done.stderr
        # The command given goes on: the next task runs, nothing is restarted.
        before = stub.request_count
        again = run_cli(*go_on.split()[1:], extra_env=keys)
        assert again.returncode == 1  # the budget stops it again, one task further
        assert stub.request_count == before + 1
        snap = snapshot(tmp_path / ".coditect" / "state.db", "ends")
        assert snap.counts.get("completed") == 4 - 2  # T0 (restarted), then T1


def test_a_truncated_reply_is_named(tmp_path: Path) -> None:
    keys = {"OPENAI_API_KEY": KEY}
    with StubServer() as stub:
        project = _stub_project(tmp_path, stub, tasks=2)
        stub.script(reply("cut mid", finish_reason="length"))  # T0's (one task at a time)
        done = run_cli("run", project, extra_env=keys)
        assert "1 reply was cut off at the agent's max_tokens (truncated): T0" in done.stdout
        stub.script(reply("cut mid", finish_reason="length"))
        data = json.loads(run_cli("run", project, "--restart", "--json", extra_env=keys).stdout)
        assert data["next"]["truncated"] == ["T0"]
        data = json.loads(run_cli("run", project, "--restart", "--json", extra_env=keys).stdout)
        assert data["next"]["truncated"] == []  # the stub answers in full now


def test_ctrl_c_after_restart_names_the_command_that_resumes(tmp_path: Path) -> None:
    project = fake_project(tmp_path, latency=0.6, name="slow-fake")
    assert run_cli("run", project).returncode == 0
    child = subprocess.Popen(
        [*coditect_argv(), "run", str(project), "--restart", "-j", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        deadline = time.monotonic() + 60
        db = tmp_path / ".coditect" / "state.db"
        while time.monotonic() < deadline:  # the restarted run has begun its first task
            snap = snapshot(db, "slow-fake")
            if snap is not None and len(snap.runs) == 2 and snap.counts.get("in_progress"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the restarted run did not start a task in time")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    resume = f"coditect run {project} -j 1 --json"
    assert f"to resume, run: {resume} (" in err
    assert "run the same command to resume" not in err
    assert json.loads(out) == {"error": "interrupted", "exit_code": 130, "resume_command": resume}


def test_a_big_project_lists_only_what_did_not_simply_succeed(tmp_path: Path) -> None:
    graph = {f"T{i:02d}": [] for i in range(30)}
    graph["T29"] = ["T05"]
    project = fake_project(
        tmp_path, graph=graph, agents={"broken": HOSTILE_FAILURE}, task_agents={"T05": "broken"}
    )
    done = run_cli("run", project)
    assert done.returncode == 1
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ T")]
    assert [row.split()[1] for row in rows] == ["T05", "T29"]
    left_out = "28 task(s) that simply succeeded are not listed (all of them: add -v, or"
    assert f"{left_out} coditect tasks {project})" in done.stdout
    every = run_cli("run", project, "-v")
    assert len([line for line in every.stdout.splitlines() if line.startswith("│ T")]) == 30

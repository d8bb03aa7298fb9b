"""Seeing what writing tasks changed, through real ``coditect`` processes: ``diff`` (the
integration branch against the base), ``show`` (a task's checks, change and diff) and
``report`` (JSON and HTML), every text from the repository escaped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_projects import run_cli
from git_repos import make_repo, user_state

from coditect_core.orchestration.changes import CodeChanges
from coditect_core.store import StateStore, default_state_path
from coditect_core.tools.checks import Check
from coditect_core.tools.workspace import Workspace

PROJECT = """project: web
agents:
  coder: {type: custom, provider: fake}
tasks:
  - id: T1
    title: Edit the app
    checks: [[python, -c, 'pass']]
  - id: T2
    title: Change nothing
"""
HOSTILE = "[red]markup[/red] <script>alert(1)</script> \x1b[31mansi\x1b[0m"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "web", {"app.py": "X = 1\n", "coditect.yaml": PROJECT})
    return repo / "coditect.yaml"


async def record_changes(project: Path) -> None:
    repo = project.parent
    ws = await Workspace.open(repo, project="web")
    async with StateStore.open(default_state_path(repo)) as store:
        run = await store.begin_run("web", options={})
        await store.define_tasks(run.run_id, {"T1": "h1", "T2": "h2"})
        check = Check((sys.executable, "-c", "print('checked')"), 30)
        changes = CodeChanges(ws, recorder=store, run_id=run.run_id, checks={"T1": [check]})
        wt = await changes.start("T1")
        (wt.path / "app.py").write_text(f"X = 2\nY = {HOSTILE!r}\n")
        assert await changes.gate("T1")() is None
        await changes.finish("T1", "Edit the app")
        await changes.start("T2")
        await changes.finish("T2", "Change nothing")
        await changes.close()
        await store.task_finished(run.run_id, "T1", "completed", output="done")
        await store.task_finished(run.run_id, "T2", "completed", output="done")
        await store.finish_run(run.run_id, "succeeded")


async def test_diff_show_and_report_show_the_change(project: Path) -> None:
    before = user_state(project.parent)
    await record_changes(project)

    done = run_cli("diff", project, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["integration_branch"], data["base_branch"]) == ("coditect/web", "main")
    assert data["files"] == [{"path": "app.py", "added": 2, "removed": 1}]
    assert (data["files_changed"], data["lines_added"], data["lines_removed"]) == (1, 2, 1)
    assert "+X = 2" in data["diff"]

    text = run_cli("diff", project)
    assert text.returncode == 0, text.stderr
    assert "coditect/web against main: 1 file(s) changed, +2 -1" in text.stdout
    assert "+X = 2" in text.stdout
    assert "\x1b" not in text.stdout  # the diff's escape sequences are shown inert
    assert "[red]markup[/red]" in text.stdout  # and Rich markup as text
    stat = run_cli("diff", project, "--stat")
    assert "+X = 2" not in stat.stdout
    assert "app.py" in stat.stdout

    shown = run_cli("show", project, "T1", "--json")
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert task["change"]["files_changed"] == 1
    assert (task["change"]["lines_added"], task["change"]["lines_removed"]) == (2, 1)
    assert task["change"]["merge_commit"]
    assert [(c["attempt"], c["passed"]) for c in task["checks"]] == [(1, True)]
    shown_text = run_cli("show", project, "T1")
    assert "branch coditect/web-tasks/T1" in shown_text.stdout
    assert "+X = 2" in shown_text.stdout
    assert "\x1b" not in shown_text.stdout
    nothing = run_cli("show", project, "T2")
    assert "changed nothing" in nothing.stdout

    report = run_cli("report", project, "--format", "json")
    assert report.returncode == 0, report.stderr
    tasks = {t["task_id"]: t for t in json.loads(report.stdout)["tasks"]}
    assert tasks["T1"]["change"]["files"] == [{"path": "app.py", "added": 2, "removed": 1}]
    assert tasks["T1"]["checks"][0]["command"].endswith("print('checked')")
    assert tasks["T2"]["change"]["changed"] is False
    html = run_cli("report", project, "--format", "html")
    assert html.returncode == 0, html.stderr
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.stdout
    assert "<script>alert(1)</script>" not in html.stdout

    assert user_state(project.parent)[:2] == before[:2]  # HEAD untouched
    # the user's status: only the state folder's files are new
    new = user_state(project.parent)[2].replace(before[2], "").split("\n")
    assert all(line.startswith("?? .coditect/") for line in new if line), new


def test_diff_before_any_run_says_so(project: Path) -> None:
    done = run_cli("diff", project)
    assert done.returncode == 2
    assert "coditect/web" in done.stderr
    assert "does not exist" in done.stderr


def test_diff_of_a_folder_that_is_no_repository(tmp_path: Path) -> None:
    (tmp_path / "coditect.yaml").write_text(PROJECT)
    done = run_cli("diff", tmp_path / "coditect.yaml", "--json")
    assert done.returncode == 2
    assert "not a git repository" in json.loads(done.stdout)["error"]

"""Finding the project (issue 18): with no PROJECT, every command reads ./coditect.yaml (what
``coditect init`` writes); a folder means its coditect.yaml; a wrong path says so and suggests
the nearest YAML files. Through the real command, in a child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_projects import fake_project, run_cli

pytestmark = pytest.mark.timeout(120)


def test_init_writes_the_file_every_command_reads_by_default(tmp_path: Path) -> None:
    created = run_cli("init", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "coditect.yaml").is_file()
    assert created.stderr.endswith("run it with: coditect run\n")  # the shortest command
    in_folder = run_cli("init", "sub", cwd=tmp_path)
    assert in_folder.stderr.endswith("run it with: coditect run sub\n")
    assert run_cli("tasks", "sub", cwd=tmp_path).returncode == 0
    status = run_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["pending"] == 2
    shown = run_cli("show", "TASK-001", "--json", cwd=tmp_path)  # one word: the ID
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["task_id"] == "TASK-001"
    assert run_cli("agents", "--json", cwd=tmp_path).returncode == 0


def test_no_project_runs_and_records_the_default_file(tmp_path: Path) -> None:
    fake_project(tmp_path, filename="coditect.yaml")
    done = run_cli("run", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["ran"]) == 7
    assert (tmp_path / ".coditect" / "state.db").is_file()
    marked = run_cli("task", "fail", "STEP-4.7", "--json", cwd=tmp_path)
    assert marked.returncode == 0, marked.stderr
    assert json.loads(marked.stdout)["status"] == "failed"
    listed = run_cli("tasks", "--status", "failed", "--json", cwd=tmp_path)
    assert [t["task_id"] for t in json.loads(listed.stdout)["tasks"]] == ["STEP-4.7"]
    rerun = run_cli("task", "rerun", "STEP-4.1", "--json", cwd=tmp_path)  # one word: the ID
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["task_id"] == "STEP-4.1"
    report = run_cli("report", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["project"] == "quick-fake"


def test_a_folder_means_its_coditect_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    fake_project(folder, filename="coditect.yaml")
    done = run_cli("run", "proj", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (folder / ".coditect" / "state.db").is_file()
    shown = run_cli("show", folder, "STEP-4.1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"
    nxt = run_cli("next", "proj", cwd=tmp_path)
    assert nxt.returncode == 0, nxt.stderr
    assert "every task is completed" in nxt.stdout


def test_a_wrong_path_suggests_the_nearest_yaml_files(tmp_path: Path) -> None:
    fake_project(tmp_path, filename="project.yaml")
    (tmp_path / "notes.txt").write_text("not a project")
    for command in (["status"], ["run"], ["doctor"], ["report"], ["show"], ["task", "reset"]):
        args = [*command, "projct.yaml", *(["T1"] if command[-1] in ("show", "reset") else [])]
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "projct.yaml: no such file; did you mean project.yaml?" in done.stderr, command
    assert not (tmp_path / ".coditect").exists()  # nothing written
    as_json = run_cli("tasks", "projct.yaml", "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"].startswith("projct.yaml: no such file")


def test_no_project_file_here_says_how_to_make_one(tmp_path: Path) -> None:
    done = run_cli("run", cwd=tmp_path)
    assert done.returncode == 2
    assert "coditect.yaml: no such file" in done.stderr
    assert "coditect init" in done.stderr
    assert not (tmp_path / ".coditect").exists()
    fake_project(tmp_path, filename="plan.yaml")
    other = run_cli("status", cwd=tmp_path)
    assert other.returncode == 2
    assert "did you mean plan.yaml?" in other.stderr


def test_a_folder_without_coditect_yaml_lists_its_yaml_files(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    fake_project(folder, filename="alpha.yaml")
    done = run_cli("status", "work", cwd=tmp_path)
    assert done.returncode == 2
    assert "work/coditect.yaml: no such file; did you mean work/alpha.yaml?" in done.stderr


def test_a_project_without_its_id_says_the_id_is_missing(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    fake_project(tmp_path / "proj")
    for word in ("proj", "proj/project.yaml", "other.yaml"):
        done = run_cli("show", word, cwd=tmp_path)
        assert done.returncode == 2
        assert f"missing argument ID: the task id after {word}" in done.stderr, word


def test_help_says_where_the_project_is_found() -> None:
    for command in (["run"], ["status"], ["show"], ["task", "complete"]):
        done = run_cli(*command, "--help")
        assert done.returncode == 0
        assert "(default: ./coditect.yaml)" in " ".join(done.stdout.split()), command
    usage = run_cli("show", "--help").stdout.splitlines()[0]
    assert usage == "Usage: coditect show [OPTIONS] [PROJECT] ID"

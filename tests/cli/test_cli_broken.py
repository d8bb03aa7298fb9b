"""Broken project files through the command: exit code 2, the exact line and field named, and no
state written (no ``.coditect/`` beside the file).

Every fixture of ``tests/support/broken_projects/`` (their first line says what they expect; see
:func:`test_project_file_errors.broken_project_cases`) goes through ``coditect run`` in Typer's
runner; a sample goes through a real process, and through every command that reads a project.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from broken_cases import broken_project_cases
from cli_projects import fake_project, run_cli
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.project import MAX_FILE_BYTES

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
CASES = broken_project_cases()
IDS = [c[0].stem for c in CASES]
SAMPLE = ["cycle", "duplicate_yaml_key", "unknown_agent", "tab_indent", "not_utf8", "empty"]


def expected_prefix(path: Path, line: int | None, field: str | None) -> str:
    at = f"{path}:{line}: " if line is not None else f"{path}: "
    return "error: " + at + (f"{field}: " if field else "")


def copy(case: Path, tmp_path: Path) -> Path:
    """The fixture in a fresh directory, where a state directory would appear."""
    target = tmp_path / case.name
    shutil.copyfile(case, target)
    return target


def test_enough_broken_files() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(("case", "line", "field", "message"), CASES, ids=IDS)
def test_run_refuses_broken_file(
    case: Path, line: int | None, field: str | None, message: str, tmp_path: Path
) -> None:
    path = copy(case, tmp_path)
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(expected_prefix(path, line, field)), first
    assert message in first
    assert result.stdout == ""
    assert os.listdir(tmp_path) == [case.name]  # no .coditect/


@pytest.mark.parametrize("stem", SAMPLE)
def test_real_process_and_every_reading_command_refuse_it(stem: str, tmp_path: Path) -> None:
    case, line, field, message = next(c for c in CASES if c[0].stem == stem)
    path = copy(case, tmp_path)
    done = run_cli("run", path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(expected_prefix(path, line, field))
    assert message in done.stderr
    p = str(path)
    commands = [
        ["run", p, "--dry-run"], ["status", p], ["tasks", p], ["next", p], ["show", p, "T1"],
        ["agents", p], ["doctor", p], ["report", p], ["task", "complete", p, "T1"],
        ["task", "cancel", p, "T1"],
    ]  # fmt: skip
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, args
    assert os.listdir(tmp_path) == [case.name]


def test_missing_file_directory_and_oversized_file(tmp_path: Path) -> None:
    absent = runner.invoke(app, ["run", str(tmp_path / "absent.yaml")])
    assert absent.exit_code == 2
    assert "no such file" in absent.stderr
    folder = runner.invoke(app, ["status", str(tmp_path)])
    assert folder.exit_code == 2
    # a folder means its coditect.yaml (issue 18), which is not there
    assert f"{tmp_path / 'coditect.yaml'}: no such file" in folder.stderr
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse
    result = runner.invoke(app, ["run", str(big)])
    assert result.exit_code == 2
    assert "10 MB" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["big.yaml"]


def test_unset_variable_of_a_used_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLI_TEST_UNSET_KEY", raising=False)
    project = fake_project(
        tmp_path,
        agents={"cloud": {"type": "openai-gpt", "api_key": "${CLI_TEST_UNSET_KEY}"}},
        task_agents={"STEP-4.7": "cloud"},
    )
    result = runner.invoke(app, ["run", str(project)])
    assert result.exit_code == 2
    assert "agents.cloud.api_key: environment variable CLI_TEST_UNSET_KEY is not set" in (
        result.stderr
    )
    assert "runs task 'STEP-4.7'" in result.stderr
    # A run that does not use that agent needs no variable; read-only views never do.
    assert runner.invoke(app, ["status", str(project)]).exit_code == 0
    assert not (tmp_path / ".coditect").exists()
    assert runner.invoke(app, ["run", str(project), "--only", "STEP-4.6"]).exit_code == 0


def test_unknown_agent_or_task_chosen_on_the_command_line(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    result = runner.invoke(app, ["run", str(project), "--agent", "fak"])
    assert result.exit_code == 2
    assert "agent 'fak' was chosen to run the tasks but is not defined (did you mean" in (
        result.stderr
    )
    result = runner.invoke(app, ["run", str(project), "--only", "STEP-4.8"])
    assert result.exit_code == 2
    assert "task 'STEP-4.8' was selected to run but is not in the file" in result.stderr
    assert not (tmp_path / ".coditect").exists()

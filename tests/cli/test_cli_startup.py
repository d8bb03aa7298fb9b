"""What every ``coditect`` command shares: a fast ``--help`` that imports no provider SDK (and
none of the heavy libraries), ``Examples:`` in every help, ``NO_COLOR``, ``-v`` logs with keys
masked, and ``python -m coditect_core.cli.main``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from cli_projects import env, fake_project, run_cli
from typer.testing import CliRunner

from coditect_core.cli.main import app

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()
SDKS = ("openai", "anthropic", "google.genai", "llama_cpp", "ray", "mcp")
HEAVY = ("pydantic", "yaml", "rich", "coditect_core.orchestration", "coditect_core.project")
LOADED = (
    "import sys\n"
    "from coditect_core.cli.main import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('LOADED=' + ' '.join(sorted(sys.modules)))\n"
)
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;)")


def loaded_modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "LOADED=" in done.stderr, done.stderr
    return set(done.stderr.rsplit("LOADED=", 1)[1].split())


def command_paths() -> list[list[str]]:
    """Every command, as the argv that reaches it (``task complete`` included)."""
    group = typer.main.get_command(app)  # Typer's own (vendored) click types: duck-typed here
    paths = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            paths.extend([name, sub] for sub in command.commands)
        else:
            paths.append([name])
    return paths


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["status", "--help"]])
def test_help_imports_no_provider_sdk(args: list[str]) -> None:
    loaded = loaded_modules(*args)
    assert not [m for m in SDKS if m in loaded]
    assert "coditect_core.cli.main" in loaded


def test_top_level_help_imports_nothing_heavy() -> None:
    loaded = loaded_modules("--help")
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_every_command_is_listed_and_has_examples() -> None:
    paths = command_paths()
    names = {" ".join(p) for p in paths}
    assert {
        "run", "ask", "init", "report", "status", "tasks", "show", "next", "agents", "doctor",
        "task complete", "task fail", "task cancel", "task reset",
        "state backup", "state list-backups", "state restore",
    } <= names  # fmt: skip
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Examples:" in result.stdout, path
        assert f"coditect {' '.join(path)}" in result.stdout, path


def test_reporting_commands_have_json() -> None:
    for path in command_paths():
        if path[0] in ("init",):
            continue
        result = runner.invoke(app, [*path, "--help"])
        assert "--json" in result.stdout, path


def test_no_color_is_honoured(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    assert run_cli("run", project).returncode == 0
    terminal = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
    coloured = run_cli("status", project, extra_env=terminal)
    assert COLOUR.search(coloured.stdout), coloured.stdout
    plain = run_cli("status", project, extra_env={**terminal, "NO_COLOR": "1"})
    assert plain.returncode == 0
    assert "7/7 completed" in plain.stdout
    assert not COLOUR.search(plain.stdout), plain.stdout


def test_verbose_logs_mask_keys(tmp_path: Path) -> None:
    canary = "sk-verbose-canary-93be1c"
    leaky = [sys.executable, "-c", "import os,sys; sys.stderr.write(os.environ['DEMO_API_KEY'])"]
    project = fake_project(
        tmp_path,
        agents={
            "leaky": {
                "type": "custom",
                "interface": "script",
                "command": [*leaky, "x"],
                # a command gets only the variables it is given
                "options": {"env": {"DEMO_API_KEY": "${DEMO_API_KEY}"}},
            }
        },
        task_agents={"STEP-4.1": "leaky"},
    )
    done = run_cli("-vv", "run", project, "--json", extra_env={"DEMO_API_KEY": canary})
    assert done.returncode == 1
    assert " DEBUG coditect_core." in done.stderr
    assert " INFO coditect_core.orchestration.executor: task STEP-4.1 failed" in done.stderr
    assert "***" in done.stderr
    assert canary not in done.stderr + done.stdout
    info = run_cli("-v", "run", project, "--restart", extra_env={"DEMO_API_KEY": canary})
    assert " INFO coditect_core." in info.stderr
    assert " DEBUG " not in info.stderr
    assert canary not in info.stderr + info.stdout
    quiet = run_cli("run", project, "--restart", extra_env={"DEMO_API_KEY": canary})
    assert " INFO " not in quiet.stderr


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coditect_core.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        check=False,
    )
    assert done.returncode == 0
    assert "Set up:" in done.stdout  # the commands, grouped (issue 18)
    assert "doctor" in done.stdout

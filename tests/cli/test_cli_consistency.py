"""A consistent command (issue 18): ``--version``, one naming style in every ``--help`` (metavars,
never Python types), whole one-line descriptions grouped in panels, errors about arguments
without pydantic's prefixes, and shell completion."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

import pytest
from cli_projects import coditect_argv, env, run_cli
from test_cli_startup import SDKS, command_paths, loaded_modules
from typer.testing import CliRunner

from coditect_core import __version__
from coditect_core.cli.main import PANEL_OF, app
from coditect_core.cli.typer_style import PANELS
from coditect_core.project.diagnostics import plain_message

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()
TYPE_NAME = re.compile(r"<[a-z][a-z_\[\]| ]*>|\{[A-Z]+\}")  # <list[str]>, <int range>, {PROJECT}


def test_version_prints_the_package_version_and_imports_no_sdk() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"coditect {__version__}\n"
    assert __version__ == importlib.metadata.version("coditect-core")
    loaded = loaded_modules("--version")
    assert "coditect_core.cli.main" in loaded
    assert [m for m in SDKS if m in loaded] == []


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_help_names_values_by_metavar(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert not TYPE_NAME.findall(result.stdout), result.stdout
    for line in result.stdout.splitlines():
        option = re.match(r"\s+(?:-\w, )?(--[a-z-]+)(?: ([^ ]+))?\s{2,}", line)
        if option and option.group(2):  # a value's name: upper case or a choice (local|ray)
            assert option.group(2).isupper() or "|" in option.group(2), line
        assert " / --no-" not in line, line  # flags are one word (--restart, not --no-restart)


def test_top_level_help_groups_whole_descriptions() -> None:
    text = runner.invoke(app, ["--help"]).stdout
    headings = [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][a-z -]+:", line)]
    assert headings[0] == "Options"
    assert headings[1:] == [p for p in PANELS if p in headings]  # every command in a panel
    assert {"Set up", "Run", "Inspect", "By hand", "One-off"} <= set(headings)
    listed = text.split("Set up:", 1)[1]
    assert "..." not in listed
    rows = [line for line in listed.splitlines() if line.startswith("  ")]
    assert all(not line.startswith("   ") for line in rows), rows  # one line each
    for command in ("init", "agents", "doctor", "run", "status", "report", "task", "ask"):
        assert re.search(rf"^  {command} +[A-Z]", listed, re.M), command


def test_every_command_has_a_panel() -> None:
    names = {path[0] for path in command_paths()}
    assert names <= set(PANEL_OF), sorted(names - set(PANEL_OF))
    assert set(PANEL_OF.values()) <= set(PANELS)


def test_task_group_help_lists_whole_descriptions() -> None:
    text = runner.invoke(app, ["task", "--help"]).stdout
    rows = text.split("Commands:", 1)[1].splitlines()
    assert "..." not in "\n".join(rows)
    assert "  cancel    Cancel a task: it and its dependents wait until `task reset`." in rows


def test_argument_errors_have_no_validation_prefix() -> None:
    done = run_cli("report", "--format", "pdf")
    assert done.returncode == 2
    assert "Value error" not in done.stderr
    assert "'pdf' is not one of 'md', 'json', 'html'" in done.stderr
    count = run_cli("run", "-j", "0")
    assert count.returncode == 2
    assert "Input should" not in count.stderr
    assert "'-j': must be greater than or equal to 1" in count.stderr


def test_plain_message_strips_the_library_words() -> None:
    assert plain_message("Value error, 'x' is not one of 'a'") == "'x' is not one of 'a'"
    assert plain_message("Assertion failed, no") == "no"
    assert plain_message("Input should be a valid integer") == "must be a valid integer"


def test_show_completion_prints_a_bash_script() -> None:
    done = run_cli("--show-completion", "bash", extra_env={"SHELL": "/bin/bash"})
    assert done.returncode == 0, done.stderr
    assert "_coditect_completion()" in done.stdout
    assert "complete -o default -F _coditect_completion coditect" in done.stdout


def test_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        done = subprocess.run(
            coditect_argv(),
            capture_output=True,
            text=True,
            timeout=60,
            env=env(
                _CODITECT_COMPLETE="complete_bash",
                COMP_WORDS=words,
                COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
            ),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("coditect statu") == ["status"]
    assert sorted(complete("coditect st")) == ["state", "status"]
    assert "--restart" in complete("coditect run --re")


def test_help_mentions_version_and_completion() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "coditect_core.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        check=True,
    ).stdout
    for option in ("--version", "--install-completion", "--show-completion"):
        assert option in text


@pytest.mark.parametrize("args", [["run", "--help"], ["--version"], ["status", "--help"]])
def test_completion_and_version_options_cost_no_pydantic(args: list[str]) -> None:
    # Typer's own completion options are not flags: coercing them imported pydantic for every
    # command (0.15 s); ours are flags.
    loaded = loaded_modules(*args)
    assert not [m for m in loaded if m.split(".")[0] in ("pydantic", "yaml", "rich")]

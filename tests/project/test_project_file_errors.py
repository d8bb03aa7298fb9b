"""Broken project files: each error names the exact line, field and value, as a ProjectFileError.

The files in ``tests/support/broken_projects/`` say on their first line what they expect:
``# expect: LINE | FIELD | MESSAGE`` (``-`` where there is no line or no field). The CLI tests
reuse them through :func:`broken_project_cases`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from broken_cases import BROKEN, broken_project_cases

from coditect_core.errors import ProjectFileError
from coditect_core.project import (
    MAX_FILE_BYTES,
    _yaml,
    load_project,
    parse_project_file,
    read_project_file,
)

CASES = broken_project_cases()


def test_there_are_enough_broken_files() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("path", "line", "field", "message"), CASES, ids=[c[0].stem for c in CASES]
)
def test_broken_project_names_line_field_and_value(
    path: Path, line: int | None, field: str | None, message: str
) -> None:
    with pytest.raises(ProjectFileError) as caught:
        read_project_file(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == line
    assert error.field == field
    text = str(error)
    first = text.splitlines()[0]
    assert message in first
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert first.startswith(prefix + (f"{field}: " if field else ""))


def test_secret_value_is_never_shown() -> None:
    with pytest.raises(ProjectFileError) as caught:
        read_project_file(BROKEN / "api_key_not_string.yaml")
    assert "987654321" not in str(caught.value)


def test_secret_looking_option_is_hidden_but_others_are_shown() -> None:
    text = (
        "agents:\n"
        "  gpt:\n"
        "    type: openai-gpt\n"
        "    options:\n"
        "      extra_headers: {X-Auth-Token: [1234567]}\n"
        "tasks:\n"
        "  - {id: T1, title: First, estimated_hours: [77]}\n"
    )
    with pytest.raises(ProjectFileError) as caught:
        # options accept any JSON, so the only error is the task's; then a secret one:
        parse_project_file(text)
    assert "tasks[0].estimated_hours" in str(caught.value)
    secret = text.replace("[1234567]", "{bad: !!binary aGk=}")
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(secret)
    message = str(caught.value)
    assert "agents.gpt.options.extra_headers.X-Auth-Token.bad: expected text" in message
    assert "got (hidden)" in message
    assert "b'hi'" not in message


def test_several_problems_are_listed_first_by_line() -> None:
    text = (
        "agents:\n"
        "  local: {type: local, max_tokens: -1}\n"
        "tasks:\n"
        "  - {id: T1, title: First, priority: soon}\n"
        "  - {id: T2, titel: Second}\n"
    )
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text, "p.yaml")
    error = caught.value
    assert (error.line, error.field) == (2, "agents.local.max_tokens")
    lines = str(error).splitlines()
    assert lines[0] == (
        "p.yaml:2: agents.local.max_tokens: must be greater than 0, got -1 (a number)"
    )
    assert lines[1].startswith("  p.yaml:4: tasks[0].priority: unknown priority 'soon'")
    assert lines[2].startswith("  p.yaml:5: tasks[1].titel: unknown field 'titel'")
    # the missing title is explained by the typo, so it comes last
    assert lines[3].startswith("  p.yaml:5: tasks[1].title: missing required field 'title'")


def test_file_over_10_mb_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no 10 MB written

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(_yaml, "open", no_reading, raising=False)
    with pytest.raises(ProjectFileError) as caught:
        read_project_file(big)
    assert caught.value.path == str(big)
    assert "10 MB" in str(caught.value)


def test_file_of_exactly_10_mb_is_read(tmp_path: Path) -> None:
    exact = tmp_path / "exact.yaml"
    body = b"agents: {local: {type: local}}\ntasks: [{id: T1, title: First}]\n"
    exact.write_bytes(body + b"#" * (MAX_FILE_BYTES - len(body) - 1) + b"\n")
    assert os.path.getsize(exact) == MAX_FILE_BYTES
    assert read_project_file(exact).task_ids == ["T1"]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ProjectFileError, match="no such file"):
        read_project_file(tmp_path / "absent.yaml")
    with pytest.raises(ProjectFileError, match="is a directory"):
        read_project_file(tmp_path)


def test_recursive_alias_is_refused() -> None:
    text = "agents: {local: {type: local}}\ntasks: &t [{id: T1, title: a, metadata: {m: *t}}]\n"
    with pytest.raises(ProjectFileError, match="refers to the value that contains it"):
        parse_project_file(text)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "agents: {local: {type: local}}\ntasks: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ProjectFileError):
        parse_project_file(text)


# Errors that depend on the run: which tasks and agents it uses, and the environment.

SECRET_PROJECT = """\
project: envs
defaults: {agent: local}
agents:
  local: {type: local}
  claude:
    type: anthropic-claude
    api_key: "${CLAUDE_TEST_KEY}"
    base_url: "${CLAUDE_TEST_URL}"
tasks:
  - {id: T1, title: Local work}
  - {id: T2, title: Cloud work, agent: claude}
"""


def test_unset_variable_of_a_used_agent_names_variable_line_and_task(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SECRET_PROJECT)
    with pytest.raises(ProjectFileError) as caught:
        load_project(path, environ={"CLAUDE_TEST_URL": "https://example.invalid"})
    error = caught.value
    assert (error.line, error.field) == (7, "agents.claude.api_key")
    assert "environment variable CLAUDE_TEST_KEY is not set" in str(error)
    assert "agent 'claude' runs task 'T2'" in str(error)
    assert "https://example.invalid" not in str(error)


def test_every_unset_variable_is_listed() -> None:
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(SECRET_PROJECT).resolve(environ={})
    assert "CLAUDE_TEST_KEY" in str(caught.value)
    assert "CLAUDE_TEST_URL" in str(caught.value)
    assert caught.value.line == 7


def test_selecting_an_unknown_task_or_agent() -> None:
    project_file = parse_project_file(SECRET_PROJECT, "p.yaml")
    with pytest.raises(ProjectFileError, match=r"task 'T3' was selected to run but is not"):
        project_file.resolve(only=["T1", "T3"], environ={})
    with pytest.raises(ProjectFileError, match=r"agent 'locl' .* \(did you mean 'local'\?\)"):
        project_file.resolve(agent_override="locl", environ={})


def test_override_agent_must_have_its_variables() -> None:
    project_file = parse_project_file(SECRET_PROJECT)
    with pytest.raises(ProjectFileError, match="agent 'claude' runs every selected task"):
        project_file.resolve(only=["T1"], agent_override="claude", environ={})


def test_reviewer_of_a_used_hybrid_agent_must_have_its_variables() -> None:
    text = """\
agents:
  writer: {type: local, interface: hybrid, reviewer: critic}
  critic: {type: openai-gpt, api_key: "${CRITIC_TEST_KEY}"}
defaults: {agent: writer}
tasks:
  - {id: T1, title: Draft}
"""
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text).resolve(environ={})
    assert caught.value.field == "agents.critic.api_key"
    assert "agent 'critic' reviews for 'writer'" in str(caught.value)

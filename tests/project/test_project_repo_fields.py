"""The project file's fields for tasks that change code: ``checks:``, ``check_attempts:``,
``repo:``, ``base_branch:``, ``integration_branch:``, ``on_conflict:``, ``commit_author:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError
from coditect_core.project import load_project, parse_project_file
from coditect_core.tools.checks import DEFAULT_CHECK_TIMEOUT_S, Check
from coditect_core.tools.workspace import DEFAULT_AUTHOR

AGENTS = """
agents:
  coder: {type: openai-gpt, model: gpt-4o}
  careful: {type: openai-gpt, model: gpt-4o, on_conflict: ask}
"""


def write(tmp_path: Path, head: str = "", tasks: str = "") -> Path:
    path = tmp_path / "proj" / "coditect.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = tasks or "  - {id: t1, title: one, agent: coder}\n"
    path.write_text(f"project: web\n{head}{AGENTS}tasks:\n{body}")
    return path


def test_defaults(tmp_path: Path) -> None:
    project = load_project(write(tmp_path), environ={})
    assert project.repo_path == tmp_path / "proj"
    assert project.repo.base_branch is None
    assert project.repo.integration_branch is None
    assert project.repo.commit_author == DEFAULT_AUTHOR
    assert project.on_conflict_for("t1") == "fail"
    assert project.task_checks == {}
    assert project.check_attempts == {"t1": 2}


def test_every_field_read(tmp_path: Path) -> None:
    head = (
        "repo: ../code\nbase_branch: develop\nintegration_branch: ai/web\n"
        "on_conflict: ask\ncommit_author: 'Bot <bot@example.org>'\n"
    )
    tasks = (
        "  - id: t1\n    title: one\n    agent: coder\n"
        "    checks: [[python, -m, pytest, -q], {run: [ruff, check, .], timeout: 30}]\n"
        "    check_attempts: 3\n"
        "  - {id: t2, title: two, agent: careful}\n"
    )
    project = load_project(write(tmp_path, head, tasks), environ={})
    assert project.repo_path == tmp_path / "code"
    assert (project.repo.base_branch, project.repo.integration_branch) == ("develop", "ai/web")
    assert project.repo.commit_author == "Bot <bot@example.org>"
    assert project.task_checks == {
        "t1": [
            Check(("python", "-m", "pytest", "-q"), DEFAULT_CHECK_TIMEOUT_S),
            Check(("ruff", "check", "."), 30.0),
        ]
    }
    assert project.check_attempts == {"t1": 3, "t2": 2}
    assert project.on_conflict_for("t1") == "ask"  # the project's
    assert project.on_conflict_for("t2") == "ask"  # the agent's


def test_an_agents_on_conflict_overrides_the_projects(tmp_path: Path) -> None:
    tasks = "  - {id: t1, title: one, agent: coder}\n  - {id: t2, title: two, agent: careful}\n"
    project = load_project(write(tmp_path, "on_conflict: fail\n", tasks), environ={})
    assert (project.on_conflict_for("t1"), project.on_conflict_for("t2")) == ("fail", "ask")


@pytest.mark.parametrize(
    ("head", "task_extra", "field", "says"),
    [
        ("", "checks: ['pytest -q']", "tasks[0].checks[0]", "expected a list"),
        ("", "checks: [['pytest -q']]", "tasks[0].checks[0]", "write [pytest, -q]"),
        ("", "checks: pytest", "tasks[0].checks", "expected a list"),
        ("", "checks: [[]]", "tasks[0].checks[0]", "at least 1"),
        ("", "checks: [{run: [x], timeout: 0}]", "tasks[0].checks[0].timeout", "greater than 0"),
        ("", "checks: [{run: [x], time: 1}]", "tasks[0].checks[0].time", "timeout"),
        ("", "check_attempts: 0", "tasks[0].check_attempts", "greater than 0"),
        ("on_conflict: maybe\n", "", "on_conflict", "'maybe'"),
        ("commit_author: bob\n", "", "commit_author", "Name <email>"),
        ("repo: ''\n", "", "repo", "empty"),
    ],
)
def test_bad_values_name_the_field(
    tmp_path: Path, head: str, task_extra: str, field: str, says: str
) -> None:
    extra = f"\n    {task_extra}" if task_extra else ""
    tasks = f"  - id: t1\n    title: one{extra}\n"
    path = write(tmp_path, head, tasks)
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(path.read_text(), path)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_an_agents_bad_on_conflict_is_named(tmp_path: Path) -> None:
    text = "agents:\n  a: {type: openai-gpt, on_conflict: later}\ntasks:\n  - {id: t, title: t}\n"
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text)
    assert caught.value.field == "agents.a.on_conflict"

"""Runs whose tasks change code, in real git repositories made by the tests: scripted agents
(``ScriptedLlm``) edit files with the built-in write tools, each task in its own worktree, its
checks gate its answer, its change is committed and merged in dependency order; the user's
checkout is never touched."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from git_repos import git_out, make_repo, user_state
from scripted_agent import ScriptedLlm

from coditect_core.app.session import ProjectSession
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.store import StateStore, default_state_path

pytestmark = pytest.mark.timeout(120)

PY = sys.executable
SLOW = [PY, "-c", "import time; time.sleep(1.5)"]  # a check that passes late


@pytest.fixture(autouse=True)
def scripted() -> Iterator[None]:
    register_llm("scripted", ScriptedLlm, replace=True)
    yield
    unregister_llm("scripted")


def write(path: str, content: str) -> dict[str, Any]:
    return {"calls": [{"name": "write_file", "arguments": {"path": path, "content": content}}]}


def project(
    repo: Path, tasks: list[dict[str, Any]], scripts: dict[str, list[dict[str, Any]]], **top: Any
) -> Path:
    spec = {
        "project": "web",
        **top,
        "defaults": {"agent": "coder", "max_concurrency": 4},
        "agents": {
            "coder": {
                "type": "custom",
                "provider": "scripted",
                "tools": ["read_file", "write_file"],
                "options": {"tasks": scripts},
            }
        },
        "tasks": tasks,
    }
    path = repo / "coditect.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    git_out(repo, "add", "coditect.yaml")
    git_out(repo, "commit", "-qm", "project file")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "web", {"calc.py": "def add(a, b):\n    return a - b\n"})


async def run(path: Path, **kwargs: Any) -> Any:
    async with ProjectSession.open(path) as session:
        outcome = await session.run(**kwargs)
        return outcome, dict(session.orchestrator.results), session


def status(session: ProjectSession) -> dict[str, str]:
    return {tid: t.status.value for tid, t in session.orchestrator.tasks.items()}


def stored(path: Path) -> StateStore:
    return StateStore.open(default_state_path(path.parent), readonly=True)


async def test_independent_tasks_merge_and_a_dependent_sees_them(repo: Path) -> None:
    path = project(
        repo,
        [
            {"id": "A", "title": "add a"},
            {"id": "B", "title": "add b"},
            {
                "id": "C",
                "title": "use both",
                "dependencies": ["A", "B"],
                "checks": [[PY, "-c", "import a, b; assert a.A + b.B == 3"]],
            },
        ],
        {
            "A": [write("a.py", "A = 1\n"), {"text": "added a"}],
            "B": [write("b.py", "B = 2\n"), {"text": "added b"}],
            "C": [write("c.py", "import a, b\nC = a.A + b.B\n"), {"text": "used both"}],
        },
    )
    before = user_state(repo)
    _, results, session = await run(path)
    assert status(session) == {"A": "completed", "B": "completed", "C": "completed"}
    assert "[changed 1 file(s), +1 -0; merged" in results["A"].output
    tree = set(git_out(repo, "ls-tree", "--name-only", "coditect/web").split())
    assert {"a.py", "b.py", "c.py", "calc.py"} <= tree
    merges = git_out(repo, "rev-list", "--merges", "coditect/web").split()
    assert len(merges) == 3
    after = user_state(repo)
    assert after[:2] == before[:2]
    new = after[2].replace(before[2], "").split("\n")
    assert all(line.startswith("?? .coditect/") for line in new if line), new
    assert not (repo / "a.py").exists()
    assert git_out(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    with stored(path) as store:
        changes = {c.task_id: c for c in store.task_changes("web")}
        assert changes["C"].files == (("c.py", 2, 0),)
        assert [r.passed for r in store.check_runs("web", "C")] == [True]


async def test_a_conflict_fails_the_second_naming_the_file_and_blocks_its_dependent(
    repo: Path,
) -> None:
    path = project(
        repo,
        [
            {"id": "A", "title": "fix one way"},
            {"id": "B", "title": "fix another way", "checks": [SLOW]},  # B merges second
            {"id": "D", "title": "after B", "dependencies": ["B"]},
        ],
        {
            "A": [write("calc.py", "def add(a, b):\n    return a + b\n")],
            "B": [write("calc.py", "def add(a, b):\n    return sum((a, b))\n")],
        },
    )
    _, results, session = await run(path)
    states = status(session)
    assert states["A"] == "completed"
    assert states["B"] == "failed"
    assert states["D"] == "blocked"
    assert "calc.py" in (results["B"].error or "")
    assert "conflicts" in (results["B"].error or "")
    assert "a + b" in git_out(repo, "show", "coditect/web:calc.py")


async def test_on_conflict_ask_hands_the_task_to_a_person(repo: Path) -> None:
    path = project(
        repo,
        [{"id": "A", "title": "one way"}, {"id": "B", "title": "another way", "checks": [SLOW]}],
        {
            "A": [write("calc.py", "X = 1\n")],
            "B": [write("calc.py", "X = 2\n")],
        },
        on_conflict="ask",
    )
    _, results, session = await run(path)
    assert status(session) == {"A": "completed", "B": "awaiting_human"}
    assert "calc.py" in results["B"].metadata["handoff_prompt"]
    assert git_out(repo, "rev-parse", "--verify", "coditect/web-tasks/B")  # kept, to merge


async def test_a_failing_check_is_sent_back_and_fixed_on_the_second_try(repo: Path) -> None:
    check = [PY, "-c", "import calc, sys; sys.exit(0 if calc.add(2, 3) == 5 else 1)"]
    path = project(
        repo,
        [{"id": "FIX", "title": "fix add", "checks": [check]}],
        {
            "FIX": [
                write("calc.py", "def add(a, b):\n    return a * b\n"),  # wrong
                {"text": "done"},  # the check fails: its output comes back
                write("calc.py", "def add(a, b):\n    return a + b\n"),
                {"text": "fixed"},
            ]
        },
    )
    _, results, session = await run(path)
    assert status(session) == {"FIX": "completed"}
    assert results["FIX"].output.startswith("fixed")
    assert "a + b" in git_out(repo, "show", "coditect/web:calc.py")
    with stored(path) as store:
        assert [(r.attempt, r.exit_code) for r in store.check_runs("web", "FIX")] == [
            (1, 1),
            (2, 0),
        ]
    llm_calls = results["FIX"].metadata["agent_loop"]
    assert llm_calls["turns"] == 4


async def test_a_check_that_keeps_failing_fails_the_task(repo: Path) -> None:
    check = [PY, "-c", "import sys; print('still broken'); sys.exit(3)"]
    path = project(
        repo,
        [{"id": "FIX", "title": "fix add", "checks": [check], "check_attempts": 2}],
        {"FIX": [write("calc.py", "X = 1\n"), {"text": "done"}, {"text": "done again"}]},
    )
    _, results, session = await run(path)
    assert status(session) == {"FIX": "failed"}
    error = results["FIX"].error or ""
    assert "after 2 tries" in error
    assert "still broken" in error
    assert "exited with status 3" in error
    assert git_out(repo, "rev-list", "--merges", "coditect/web").split() == []


async def test_a_task_that_changes_nothing_says_so(repo: Path) -> None:
    path = project(repo, [{"id": "LOOK", "title": "look only"}], {"LOOK": [{"text": "all fine"}]})
    _, results, session = await run(path)
    assert status(session) == {"LOOK": "completed"}
    assert "changed nothing" in results["LOOK"].output


async def test_keep_worktrees_keeps_them(repo: Path) -> None:
    path = project(repo, [{"id": "A", "title": "a"}], {"A": [write("a.py", "A = 1\n")]})
    await run(path, keep_worktrees=True)
    kept = repo / ".git" / "coditect" / "worktrees" / "coditect_web" / "tasks" / "A"
    assert (kept / "a.py").read_text() == "A = 1\n"


async def test_a_folder_that_is_no_repository_is_refused_before_the_run(tmp_path: Path) -> None:
    from coditect_core.errors import WorkspaceError

    folder = tmp_path / "plain"
    folder.mkdir()
    spec = {
        "agents": {"coder": {"type": "custom", "provider": "scripted", "tools": ["write_file"]}},
        "tasks": [{"id": "A", "title": "a"}],
    }
    path = folder / "coditect.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(WorkspaceError, match="not a git repository"):
        await run(path)

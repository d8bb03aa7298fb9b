"""A run whose task changes code, SIGKILLed during a command (its check) and during a merge,
then resumed with the same command: the task's change is merged exactly once, nothing that was
committed is lost, and the worktrees the killed run left are gone after the resumed run. Real
``coditect run`` processes, real git repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from git_repos import git_out, make_repo
from scripted_agent import scripted_argv, scripted_env

pytestmark = pytest.mark.timeout(180)

PY = sys.executable
FIXED = "def add(a, b):\n    return a + b\n"


def project(repo: Path, check: list[str] | None = None) -> Path:
    task: dict[str, object] = {"id": "FIX", "title": "fix add"}
    if check:
        task["checks"] = [check]
    spec = {
        "project": "web",
        "repo": "web",
        "agents": {
            "coder": {
                "type": "custom",
                "provider": "scripted",
                "tools": ["read_file", "write_file"],
                "options": {
                    "tasks": {
                        "FIX": [
                            {
                                "calls": [
                                    {
                                        "name": "write_file",
                                        "arguments": {"path": "calc.py", "content": FIXED},
                                    }
                                ]
                            },
                            {"text": "fixed"},
                        ]
                    }
                },
            }
        },
        "tasks": [task],
    }
    path = repo.parent / "coditect.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def coditect_run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*scripted_argv(), "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "web", {"calc.py": "def add(a, b):\n    return a - b\n"})
    return repo


def settle(repo: Path, path: Path) -> None:
    """The resumed run finished the task: merged once, worktrees gone."""
    merges = git_out(repo, "rev-list", "--merges", "coditect/web").split()
    assert len(merges) == 1, merges
    assert git_out(repo, "show", "coditect/web:calc.py") == FIXED
    assert git_out(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not list((repo / ".git" / "coditect" / "worktrees").rglob("calc.py"))
    assert git_out(repo, "status", "--porcelain") == ""


def test_killed_during_its_check_then_resumed(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    kill_once = (
        "import os, pathlib, signal, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n"
        "    m.write_text('x')\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "import calc\n"
        "sys.exit(0 if calc.add(2, 3) == 5 else 1)\n"
    )
    path = project(repo, [PY, "-c", kill_once])
    env = scripted_env()
    first = coditect_run(path, env)
    assert first.returncode == -9, first.stderr
    assert marker.exists()
    second = coditect_run(path, env)
    assert second.returncode == 0, second.stderr + second.stdout
    settle(repo, path)


@pytest.mark.parametrize("when", ["before", "after"])
def test_killed_during_a_merge_then_resumed(repo: Path, tmp_path: Path, when: str) -> None:
    """A ``git`` first on PATH kills the run during its merge: before git merged (the commit
    is on the task's branch only) or right after (the merge commit made, not recorded)."""
    real_git = shutil.which("git")
    assert real_git is not None
    marker = tmp_path / "killed-once"
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text(
        textwrap.dedent(
            f"""\
            #!{PY}
            import os, pathlib, signal, subprocess, sys
            args = sys.argv[1:]
            marker = pathlib.Path({str(marker)!r})
            merging = "merge" in args and "--no-ff" in args
            if merging and not marker.exists() and {when!r} == "before":
                marker.write_text("x")
                os.kill(os.getppid(), signal.SIGKILL)
            code = subprocess.call([{real_git!r}, *args])
            if merging and not marker.exists() and {when!r} == "after":
                marker.write_text("x")
                os.kill(os.getppid(), signal.SIGKILL)
            sys.exit(code)
            """
        )
    )
    shim.chmod(0o755)
    path = project(repo)
    env = scripted_env(PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    first = coditect_run(path, env)
    assert first.returncode == -9, first.stderr
    assert marker.exists()
    task_branch = git_out(repo, "rev-parse", "coditect/web-tasks/FIX").strip()
    assert git_out(repo, "show", f"{task_branch}:calc.py") == FIXED  # committed before the kill
    second = coditect_run(path, env)
    assert second.returncode == 0, second.stderr + second.stdout
    settle(repo, path)

"""Real git repositories for tests: made with ``git init`` in a test's folder, one commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["git_out", "make_repo", "user_state"]

_ENV = {
    "PATH": os.environ.get("PATH", os.defpath),
    "HOME": os.environ.get("HOME", "/tmp"),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
}


def git_out(repo: Path, *args: str) -> str:
    """``git args`` in ``repo`` as the user would run it; its stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=_ENV
    ).stdout


def make_repo(path: Path, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A git repository at ``path`` on ``branch`` with ``files`` in one commit."""
    path.mkdir(parents=True, exist_ok=True)
    git_out(path, "init", "-q", "-b", branch)
    for name, text in (files or {"README.md": "hello\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git_out(path, "add", "--all")
    git_out(path, "commit", "-q", "-m", "initial")
    return path


def user_state(repo: Path) -> tuple[str, str, str]:
    """What the user sees of their checkout: HEAD's branch and commit, ``git status``."""
    return (
        git_out(repo, "symbolic-ref", "HEAD").strip(),
        git_out(repo, "rev-parse", "HEAD").strip(),
        git_out(repo, "status", "--porcelain", "--untracked-files=all"),
    )

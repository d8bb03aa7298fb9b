"""Tools an agent acts with, knowing no tasks: workspaces (git worktrees) and acceptance checks.

* :mod:`.workspace` the git repository of a run: integration branch, task worktrees, merges
* :mod:`.checks`    acceptance checks: a task's commands run in its worktree, pass or fail
"""

from __future__ import annotations

__all__: list[str] = []

"""A project's code changes as ``coditect diff`` shows them: the integration branch against the
base branch, read from the project's git repository without changing anything."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..orchestration.changes import ChangeRecorder, CodeChanges
from ..project import Project, read_project_file
from ..tools.files import WRITE_TOOLS
from ..tools.workspace import Diff, Workspace
from .view import resolve_offline

__all__ = [
    "WRITING_TOOLS",
    "integration_diff",
    "open_code_changes",
    "open_workspace",
    "writing_tasks",
]

WRITING_TOOLS = frozenset(WRITE_TOOLS)
"""The built-in tools that change files: an agent with one of them writes, and its tasks run in
worktrees of their own. ``run_command`` alone does not make a task a writing one (its commands
are the allow-listed, sandboxed ones, run in the agent's ``workspace:`` as issue 14 has it)."""


def writing_tasks(project: Project, task_ids: Iterable[str]) -> set[str]:
    """Those of ``task_ids`` whose agent has a tool that changes files (:data:`WRITING_TOOLS`)."""
    out = set()
    for task_id in task_ids:
        name = project.task(task_id).agent
        if name is None or name not in project.agents.names():
            continue
        if WRITING_TOOLS.intersection(project.agents.get(name).tools):
            out.add(task_id)
    return out


async def open_workspace(project: Project, *, create: bool = True) -> Workspace:
    """The project's repository (``repo:``, ``base_branch:``, ``integration_branch:``,
    ``commit_author:``)."""
    return await Workspace.open(
        project.repo_path,
        project=project.name,
        base_branch=project.repo.base_branch,
        integration_branch=project.repo.integration_branch,
        author=project.repo.commit_author,
        create=create,
    )


async def open_code_changes(
    project: Project,
    writing: set[str],
    *,
    recorder: ChangeRecorder | None,
    run_id: int | None,
    keep_worktrees: bool = False,
    workspace: Workspace | None = None,
) -> CodeChanges:
    """A run's :class:`CodeChanges` for its ``writing`` tasks: the repository opened (the
    integration branch made if missing; ``workspace`` if already open), what a crashed run
    left removed."""
    changes = CodeChanges(
        workspace if workspace is not None else await open_workspace(project),
        recorder=recorder,
        run_id=run_id,
        checks=project.task_checks,
        check_attempts=project.check_attempts,
        keep_worktrees=keep_worktrees,
        on_conflict=project.on_conflict_for,
        writing=writing,
    )
    await changes.prepare()
    return changes


async def integration_diff(path: str | os.PathLike[str]) -> tuple[Workspace, Diff]:
    """The project file at ``path``'s integration branch against its base branch (the
    project's ``repo:``, ``base_branch:``, ``integration_branch:``). Raises
    :class:`~coditect_core.errors.ProjectFileError` or
    :class:`~coditect_core.errors.WorkspaceError` (no repository, no such branch: no run
    changed code yet)."""
    workspace = await open_workspace(resolve_offline(read_project_file(path)), create=False)
    return workspace, await workspace.integration_diff()

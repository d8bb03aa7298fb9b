"""A project's code changes as ``coditect diff`` shows them: the integration branch against the
base branch, read from the project's git repository without changing anything."""

from __future__ import annotations

import os

from ..project import read_project_file
from ..tools.workspace import Diff, Workspace
from .view import resolve_offline

__all__ = ["integration_diff"]


async def integration_diff(path: str | os.PathLike[str]) -> tuple[Workspace, Diff]:
    """The project file at ``path``'s integration branch against its base branch (the
    project's ``repo:``, ``base_branch:``, ``integration_branch:``). Raises
    :class:`~coditect_core.errors.ProjectFileError` or
    :class:`~coditect_core.errors.WorkspaceError` (no repository, no such branch: no run
    changed code yet)."""
    project = resolve_offline(read_project_file(path))
    workspace = await Workspace.open(
        project.repo_path,
        project=project.name,
        base_branch=project.repo.base_branch,
        integration_branch=project.repo.integration_branch,
        author=project.repo.commit_author,
        create=False,
    )
    return workspace, await workspace.integration_diff()

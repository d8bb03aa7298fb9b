"""``coditect diff``: what a project's runs changed in its git repository, the integration
branch against the base branch (read-only)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import JsonOpt
from .output import ExitCode, Shown, console, fail_for, print_json, write_text
from .project_path import ProjectArg, project_file

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("diff")
    def diff_command(
        project: ProjectArg = None,
        stat: Annotated[
            bool, typer.Option("--stat", help="Only the files with lines added and removed.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Show what the runs changed in the project's git repository.

        The integration branch (default coditect/NAME, NAME the project's) against the base
        branch it started from: the files changed, lines added and removed, and the diff.

        Your checkout is not touched: review the branch, then merge it yourself.

        Examples:

          coditect diff project.yaml

          coditect diff --stat

          coditect diff project.yaml --json | jq '.files[].path'
        """
        import asyncio

        from ..app.changes import integration_diff
        from ..errors import CoditectError

        path = project_file(project, as_json=as_json)
        try:
            workspace, diff = asyncio.run(integration_diff(path))
        except (CoditectError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        head = {
            "repo": str(workspace.repo),
            "base_branch": workspace.base_branch,
            "integration_branch": workspace.integration_branch,
            "base_commit": diff.start,
            "integration_commit": diff.end,
            "files_changed": len(diff.files),
            "lines_added": diff.lines_added,
            "lines_removed": diff.lines_removed,
            "files": [{"path": f.path, "added": f.added, "removed": f.removed} for f in diff.files],
        }
        if as_json:
            print_json({**head, **({} if stat else {"diff": diff.text})})
            return
        shown = Shown()
        console().print(
            shown(
                f"{workspace.integration_branch} against {workspace.base_branch}: "
                f"{len(diff.files)} file(s) changed, +{diff.lines_added} -{diff.lines_removed}"
            ),
            markup=False,
            soft_wrap=True,
        )
        for f in diff.files:
            counts = "binary" if f.added is None else f"+{f.added} -{f.removed}"
            console().print(shown(f"  {counts:>12}  {f.path}"), markup=False, soft_wrap=True)
        if not stat and diff.text:
            write_text("\n" + diff.text)

"""``coditect state backup|list-backups|restore``: back a project's state up, roll it back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import JsonOpt, StateOpt
from .output import ExitCode, Shown, console, fail, fail_for, print_json
from .project_path import ProjectArg, ProjectWordArg, project_file

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    state_app = typer.Typer(
        name="state",
        help="Back the state up, list its backups, roll it back.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(state_app)

    @state_app.command("backup")
    def backup_command(
        project: ProjectArg = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Back the state up now.

        SQLite's online backup: safe while a run writes. The newest keep_backups (project
        file, default 5) backups are kept, in .coditect/backups/ beside the state.

        Examples:

          coditect state backup project.yaml

          coditect state backup project.yaml --json
        """
        from ..app.backups import backup_project
        from ..errors import ProjectFileError, StateError

        path = project_file(project, as_json=as_json)
        try:
            made = backup_project(path, state=state)
        except (ProjectFileError, StateError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json({"backup": made.to_dict()})
            return
        console().print(f"backed up: {Shown().markup(str(made.path))} ({made.size:,} bytes)")

    @state_app.command("list-backups")
    def list_command(
        project: ProjectArg = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List the state's backups, newest first.

        Examples:

          coditect state list-backups project.yaml

          coditect state list-backups project.yaml --json
        """
        from ..app.backups import project_backups
        from ..errors import ProjectFileError, StateError
        from ..reporting import fmt

        path = project_file(project, as_json=as_json)
        try:
            db, backups = project_backups(path, state=state)
        except (ProjectFileError, StateError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json({"state": str(db), "backups": [b.to_dict() for b in backups]})
            return
        out, escape = console(), Shown().markup
        if not backups:
            out.print(f"no backups of {escape(str(db))}")
            return
        for b in backups:
            out.print(
                f"{escape(b.name)}  {fmt.when(b.created)}  {escape(b.reason)}  {b.size:,} bytes"
            )

    @state_app.command("restore")
    def restore_command(
        project: ProjectWordArg = None,
        backup: Annotated[
            str | None,
            typer.Argument(
                metavar="BACKUP", help="A name from `state list-backups`.", show_default=False
            ),
        ] = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Roll the state back to BACKUP.

        Refused while a run is live; the current state is backed up first.

        Examples:

          coditect state list-backups project.yaml

          coditect state restore project.yaml state-20261206T201500123456Z-manual.db
        """
        from ..app.backups import restore_project
        from ..errors import ProjectFileError, RunLockedError, StateError

        if backup is None:  # one word alone is the BACKUP, of ./coditect.yaml's state
            project, backup = None, project
        if backup is None:
            fail(
                "missing argument BACKUP: a name from `coditect state list-backups`",
                ExitCode.BAD_INPUT,
                as_json=as_json,
            )
        path = project_file(None if project is None else Path(project), as_json=as_json)
        try:
            restored, before = restore_project(path, backup, state=state)
        except RunLockedError as error:
            fail(
                f"{error}; nothing restored: try again when the run has ended",
                ExitCode.BAD_INPUT,
                as_json=as_json,
            )
        except (ProjectFileError, StateError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json(
                {
                    "restored": restored.to_dict(),
                    "previous_state": before.to_dict() if before else None,
                }
            )
            return
        escape = Shown().markup
        out = console()
        out.print(f"restored: {escape(restored.name)}")
        if before is not None:
            out.print(f"the state it replaced: {escape(str(before.path))}")

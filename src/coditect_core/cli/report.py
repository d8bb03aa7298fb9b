"""``coditect report``: what the runs of a project did, as Markdown, JSON or one HTML page."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .output import ExitCode, Shown, err_console, fail_for
from .project_path import ProjectArg, project_file

__all__ = ["register"]


class ReportFormat(StrEnum):
    md = "md"
    json = "json"
    html = "html"


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        project: ProjectArg = None,
        format_: Annotated[
            ReportFormat,
            typer.Option(
                "--format",
                "-f",
                metavar="FORMAT",
                help="md (terminals, pull requests), json or html.",
            ),
        ] = ReportFormat.md,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", metavar="FILE", help="Write to FILE, not stdout."),
        ] = None,
        run: Annotated[
            int | None,
            typer.Option("--run", metavar="N", help="Only run N (default: every run)."),
        ] = None,
        state: Annotated[
            Path | None,
            typer.Option(
                metavar="FILE", help="State database (default: .coditect/state.db beside the file)."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    ) -> None:
        """Report per task and agent: status, time, tokens, cost, attempts.

        Examples:

          coditect report project.yaml

          coditect report project.yaml --format html -o report.html

          coditect report project.yaml --run 3 --json
        """
        from ..app.view import load_report
        from ..errors import ProjectFileError, StateError
        from ..reporting import render_html, render_json, render_markdown

        fmt = ReportFormat.json if as_json else format_
        project = project_file(project, as_json=fmt is ReportFormat.json)
        try:
            data = load_report(project, state=state, run_id=run)
        except (ProjectFileError, StateError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=fmt is ReportFormat.json)
        except OSError as error:
            message = f"{project}: {error.strerror or error}"
            fail_for(error, ExitCode.BAD_INPUT, as_json=fmt is ReportFormat.json, message=message)
        renderers = {
            ReportFormat.md: render_markdown,
            ReportFormat.json: render_json,
            ReportFormat.html: render_html,
        }
        from ..project import paused_gc

        with paused_gc():  # strings and rows by the hundred thousand, no cycle
            text = renderers[fmt](data)  # secrets masked, no raw control character
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            message = f"{output}: cannot write the report: {error.strerror}"
            fail_for(error, ExitCode.BAD_INPUT, as_json=fmt is ReportFormat.json, message=message)
        err_console().print(
            f"wrote {Shown().markup(str(output))} ({len(data.tasks)} tasks, {fmt.value})"
        )

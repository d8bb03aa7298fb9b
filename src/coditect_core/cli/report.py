"""``coditect report``: what the runs of a project did, as Markdown, JSON or one HTML page."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .output import ExitCode, err_console, fail

if TYPE_CHECKING:
    from ..orchestration.task import AgentTask
    from ..project import ProjectFile

__all__ = ["register"]


class ReportFormat(StrEnum):
    md = "md"
    json = "json"
    html = "html"


def _tasks(project: ProjectFile) -> list[AgentTask]:
    """The tasks as the file defines them. No ``${VAR}`` is expanded and no key is needed: a
    report only shows task text, which is taken literally."""
    from ..orchestration.task import AgentTask

    defaults = project.spec.defaults
    return [
        AgentTask(
            task_id=t.id,
            title=t.title,
            description=t.description,
            agent=project.agent_of(t.id),
            priority=t.priority or defaults.priority,
            phase=t.phase,
            dependencies=list(t.dependencies),
            deliverables=list(t.deliverables),
            success_criteria=list(t.success_criteria),
            tags=list(t.tags),
            estimated_hours=t.estimated_hours,
        )
        for t in project.spec.tasks
    ]


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        project: Annotated[Path, typer.Argument(help="The project file (YAML).")],
        format_: Annotated[
            ReportFormat,
            typer.Option("--format", "-f", help="md (terminals, pull requests), json or html."),
        ] = ReportFormat.md,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write to FILE, not stdout.")
        ] = None,
        run: Annotated[
            int | None, typer.Option("--run", help="Only run N (default: every run).")
        ] = None,
        state: Annotated[
            Path | None,
            typer.Option(help="State database (default: .coditect/state.db beside the file)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    ) -> None:
        """Report per task and per agent: status, time, tokens, cost and attempts.

        Examples:

          coditect report project.yaml

          coditect report project.yaml --format html -o report.html

          coditect report project.yaml --run 3 --json
        """
        from ..errors import ProjectFileError, StateError
        from ..project import read_project_file
        from ..reporting import build_report, render_html, render_json, render_markdown
        from ..store import StateStore, default_state_path

        fmt = ReportFormat.json if as_json else format_
        try:
            spec = read_project_file(project)
        except ProjectFileError as error:
            fail(str(error), ExitCode.BAD_INPUT)
        db = state if state is not None else default_state_path(Path(spec.path).resolve().parent)
        if not db.exists():
            fail(
                f"{db}: no state yet: the project has not been run "
                f"(`coditect run {project}` first)",
                ExitCode.BAD_INPUT,
            )
        try:
            with StateStore.open(db, readonly=True) as store:
                data = build_report(store, spec.name, tasks=_tasks(spec), run_id=run)
        except StateError as error:
            fail(str(error), ExitCode.BAD_INPUT)
        renderers = {
            ReportFormat.md: render_markdown,
            ReportFormat.json: render_json,
            ReportFormat.html: render_html,
        }
        text = renderers[fmt](data)
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            fail(f"{output}: cannot write the report: {error.strerror}", ExitCode.BAD_INPUT)
        err_console().print(f"wrote {output} ({len(data.tasks)} tasks, {fmt.value})")

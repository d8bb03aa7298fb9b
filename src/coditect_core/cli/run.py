"""``coditect run``: run the tasks with a live view, then a summary; exit codes 0/1/2/3/130."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import ExitCode, console, err_console, fail, print_json

if TYPE_CHECKING:
    from ..orchestration.execution_result import ExecutionResult
    from ..orchestration.task import AgentTask
    from ..session import RunOutcome

__all__ = ["exit_code_for", "register"]


def exit_code_for(counts: dict[str, int], cancelled: bool) -> ExitCode:
    """The design's exit codes: failures win over waiting, an interruption over both."""
    if cancelled:
        return ExitCode.INTERRUPTED
    if counts.get("failed") or counts.get("blocked"):
        return ExitCode.TASK_FAILED
    if counts.get("awaiting_human"):
        return ExitCode.WAITING_ON_PERSON
    if counts.get("pending") or counts.get("in_progress") or counts.get("cancelled"):
        return ExitCode.TASK_FAILED
    return ExitCode.OK


def _make_view(total: int, skipped: int) -> Any:
    """A Rich progress view on a terminal, plain lines otherwise (both are observers)."""
    from ..orchestration.observer import OrchestratorObserver

    out = err_console()

    def tokens_of(result: ExecutionResult) -> str:
        return f"{result.usage.total_tokens} tokens" if result.usage else "no token count"

    class PlainView(OrchestratorObserver):
        def __init__(self) -> None:
            self.started: dict[str, float] = {}
            self.done = skipped

        def __enter__(self) -> PlainView:
            if skipped:
                out.print(f"{skipped} task(s) already done: skipped")
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        async def task_started(self, task: AgentTask, **kw: Any) -> None:
            self.started[task.task_id] = time.monotonic()
            out.print(f"started   {task.task_id} on {kw.get('agent') or '?'}", markup=False)

        async def attempt_finished(
            self, task: AgentTask, result: ExecutionResult, **kw: Any
        ) -> None:
            self.done += 1
            elapsed = time.monotonic() - self.started.pop(task.task_id, time.monotonic())
            line = f"{task.status.value:<9} {task.task_id} in {elapsed:.1f}s, {tokens_of(result)}"
            if result.error:
                line += f": {result.error}"
            out.print(f"[{self.done}/{total}] {line}", markup=False, highlight=False)

    class LiveView(PlainView):
        def __init__(self) -> None:
            super().__init__()
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=out,
                transient=True,
            )
            self.overall = self.progress.add_task("[bold]run", total=total, completed=skipped)
            self.rows: dict[str, Any] = {}

        def __enter__(self) -> LiveView:
            self.progress.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self.progress.__exit__(None, None, None)

        async def task_started(self, task: AgentTask, **kw: Any) -> None:
            self.started[task.task_id] = time.monotonic()
            self.rows[task.task_id] = self.progress.add_task(
                f"{task.task_id} [dim]{kw.get('agent') or ''}[/]", total=None
            )

        async def attempt_finished(
            self, task: AgentTask, result: ExecutionResult, **kw: Any
        ) -> None:
            row = self.rows.pop(task.task_id, None)
            if row is not None:
                self.progress.remove_task(row)
            elapsed = time.monotonic() - self.started.pop(task.task_id, time.monotonic())
            mark = {"completed": "[green]✓[/]", "failed": "[red]✗[/]"}.get(task.status.value, "•")
            from rich.markup import escape

            detail = f" [red]{escape(result.error or '')}[/]" if result.error else ""
            self.progress.console.print(
                f"{mark} {escape(task.task_id)} [dim]{escape(result.agent or '')} "
                f"{elapsed:.1f}s {tokens_of(result)}[/]{detail}"
            )
            self.progress.advance(self.overall)

    return LiveView() if out.is_terminal else PlainView()


def _summary_table(outcome: RunOutcome, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{report['project']}: run {outcome.run_id}", title_justify="left")
    for column in ("task", "status", "agent", "time", "tokens", "attempts"):
        table.add_column(column, justify="right" if column in ("time", "tokens") else "left")
    colours = {"completed": "green", "failed": "red", "blocked": "yellow"}
    for row in report["tasks"]:
        status = row["status"]
        resumed = row["task_id"] in outcome.skipped
        table.add_row(
            row["task_id"],
            f"[{colours.get(status, 'white')}]{status}[/]" + (" (earlier run)" if resumed else ""),
            row["agent"] or "",
            f"{row['duration_seconds']:.1f}s" if row["duration_seconds"] else "",
            str(row["usage"]["total_tokens"]) if row["usage"] else "",
            str(row["attempts"]) if not resumed else "",
        )
    console().print(table)
    counts = {k: v for k, v in outcome.summary.counts.items() if v}
    console().print(
        ", ".join(f"{v} {k}" for k, v in counts.items())
        + f" in {outcome.summary.duration_seconds:.1f}s"
    )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        project: Annotated[Path, typer.Argument(help="The project file (YAML).")],
        agent: Annotated[
            str | None, typer.Option("--agent", "-a", help="Run every task on this agent.")
        ] = None,
        only: Annotated[
            list[str] | None,
            typer.Option("--only", help="Run only this task (and what it needs); repeatable."),
        ] = None,
        concurrency: Annotated[
            int | None, typer.Option("--concurrency", "-j", min=1, help="Tasks at once.")
        ] = None,
        restart: Annotated[
            bool, typer.Option(help="Run every task again, as a new run (history is kept).")
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would run, and why; run nothing.")
        ] = False,
        fail_fast: Annotated[bool, typer.Option(help="Stop at the first failure.")] = False,
        state: Annotated[
            Path | None,
            typer.Option(help="State database (default: .coditect/state.db beside it)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        runner: Annotated[
            str | None,
            typer.Option(help="Where calls run: local or ray (default: the file's runner:)."),
        ] = None,
        ray_address: Annotated[
            str | None,
            typer.Option(help="Ray cluster to use (implies --runner ray; default: RAY_ADDRESS)."),
        ] = None,
    ) -> None:
        """Run every task of a project that is not done yet, in dependency order.

        Resumes from the state kept beside the project file: tasks that succeeded are skipped
        unless their definition changed. Exit codes: 0 all done, 1 a task failed, 2 bad input,
        3 tasks wait on a person, 130 interrupted (resumable).

        Examples:

          coditect run examples/quickstart.yaml

          coditect run project.yaml --only TASK-003 --agent claude

          coditect run project.yaml --restart --concurrency 8 --json

          coditect run project.yaml --runner ray --ray-address auto
        """
        import asyncio

        from ..errors import CoditectError, ProjectFileError, RunLockedError, StateError
        from ..session import ProjectSession

        try:
            session = ProjectSession.open(
                project, state=state, only=only, agent=agent, runner=runner, ray_address=ray_address
            )
        except (ProjectFileError, StateError, CoditectError, OSError) as error:
            fail(str(error), ExitCode.BAD_INPUT)

        if dry_run:
            try:
                plan = session.preview(restart=restart)
            finally:
                asyncio.run(session.aclose())
            if as_json:
                print_json(
                    {"run": list(plan.run), "skip": list(plan.skip), "reasons": plan.reasons}
                )
            else:
                for tid in plan.run:
                    console().print(f"would run  {tid}: {plan.reasons.get(tid, '')}", markup=False)
                for tid in plan.skip:
                    console().print(f"would skip {tid}: succeeded and unchanged", markup=False)
            raise typer.Exit(int(ExitCode.OK))

        async def main() -> RunOutcome:
            import signal

            loop = asyncio.get_running_loop()
            current = asyncio.current_task()
            if current is not None:  # SIGTERM ends the run like Ctrl-C: cancel, record, exit 130
                loop.add_signal_handler(signal.SIGTERM, current.cancel)
            async with session:
                total = len(session.orchestrator.tasks)
                if as_json:
                    return await session.run(
                        max_concurrency=concurrency, restart=restart, fail_fast=fail_fast
                    )
                skipped = 0 if restart else len(session.preview().skip)
                with _make_view(total, skipped) as view:
                    session.orchestrator.add_observer(view)
                    return await session.run(
                        max_concurrency=concurrency, restart=restart, fail_fast=fail_fast
                    )

        try:
            outcome = asyncio.run(main())
        except RunLockedError as error:
            fail(str(error), ExitCode.BAD_INPUT)
        except (KeyboardInterrupt, asyncio.CancelledError):
            err_console().print("interrupted: state saved; run the same command to resume")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except CoditectError as error:
            fail(str(error), ExitCode.TASK_FAILED)

        report = session.orchestrator.generate_report()
        code = exit_code_for(outcome.summary.counts, outcome.summary.cancelled)
        if as_json:
            print_json({**outcome.to_dict(), "exit_code": int(code), "tasks": report["tasks"]})
        else:
            _summary_table(outcome, report)
        raise typer.Exit(int(code))

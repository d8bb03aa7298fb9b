"""``coditect run``: run the tasks with a live view (``cli/live.py``), then a summary and what
to do next (``cli/run_summary.py``); exit codes 0/1/2/3/4/130.

Ctrl-C (SIGINT) or SIGTERM cancels the calls in flight, records their tasks as interrupted,
commits the state and exits 130; the next run resumes. A second Ctrl-C (or SIGTERM) exits at
once, still with status 130: the state database is SQLite in WAL mode, so a transaction cut
short is rolled back on the next open, and what the dead run left in flight is marked
interrupted then.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import ExitCode, Shown, err_console, fail, fail_for, print_json, write_text
from .project_path import ProjectArg, project_file

if TYPE_CHECKING:
    from ..app.session import RunOutcome

__all__ = ["SUMMARY_ROWS", "budget_message", "exit_code_for", "interrupted_message", "register"]


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


SUMMARY_ROWS = 20
"""Past this many tasks, the summary table lists only those that did not simply succeed
(``run -v``: every task)."""


def _summary_table(
    outcome: RunOutcome, report: dict[str, Any], listed: set[str] | None, tasks_command: str
) -> None:
    """The run's table: every task, or only those in ``listed`` (then a line says how many
    were left out, and where to see them)."""
    from rich.table import Table

    from ..reporting import fmt
    from .output import console

    esc = Shown().markup
    rows = report["tasks"]
    if listed is not None:
        rows = [row for row in rows if row["task_id"] in listed]
    table = Table(title=f"{esc(report['project'])}: run {outcome.run_id}", title_justify="left")
    for column in ("task", "status", "agent", "time", "tokens", "cost", "attempts"):
        table.add_column(
            column, justify="right" if column in ("time", "tokens", "cost") else "left"
        )
    colours = {"completed": "green", "failed": "red", "blocked": "yellow"}
    for row in rows:
        status = row["status"]
        resumed = row["task_id"] in outcome.skipped
        table.add_row(
            esc(row["task_id"]),
            f"[{colours.get(status, 'white')}]{esc(status)}[/]"
            + (" (earlier run)" if resumed else "")
            + (" [yellow](truncated)[/]" if row.get("truncated") else "")
            + (" (cached)" if row.get("cached") else ""),
            esc(row["agent"] or ""),
            fmt.duration(row["duration_seconds"]) if row["duration_seconds"] else "",
            fmt.count(row["usage"]["total_tokens"]) if row["usage"] else "",
            _cost(row.get("cost_usd"), row.get("cost_known_usd")),
            str(row["attempts"]) if not resumed else "",
        )
    if rows:
        console().print(table)
    left_out = len(report["tasks"]) - len(rows)
    if left_out:
        console().print(
            Shown()(
                f"{left_out} task(s) that simply succeeded are not listed "
                f"(all of them: add -v, or {tasks_command})"
            ),
            markup=False,
            soft_wrap=True,
        )
    cut = [row["task_id"] for row in report["tasks"] if row.get("truncated")]
    if cut:
        console().print(
            f"[yellow]{len(cut)} repl{'y was' if len(cut) == 1 else 'ies were'} cut off at the "
            f"agent's max_tokens (truncated):[/] {esc(', '.join(cut))}; raise max_tokens or ask "
            "for less (the agent option on_truncated: accept | warn | fail)"
        )
    counts = {k: v for k, v in outcome.summary.counts.items() if v}
    console().print(
        ", ".join(f"{v} {k}" for k, v in counts.items())
        + f" in {fmt.duration(outcome.summary.duration_seconds)}"
    )
    cost = outcome.summary.cost
    if cost.get("attempts"):
        console().print(
            f"{cost['attempts']} attempt(s), {fmt.count(cost['total_tokens'])} tokens, cost "
            + _cost(cost["cost_usd"], cost["cost_known_usd"], cost.get("cost_unknown_attempts")),
            markup=False,
        )


def _cost(cost: float | None, known: float | None, unknown: int | None = None) -> str:
    """A cost given as the whole (``None``: partly unknown) and its known part (``None``: not
    run by this process, shown as nothing); ``unknown`` attempts had no known price."""
    from ..reporting import fmt

    if cost is not None:
        return fmt.usd(cost)
    if known is None:
        return ""
    return fmt.partial_cost(known, unknown) if known else "unknown"


def budget_message(summary: Any, go_on: str) -> str:
    """What to say when a run stopped at its budget: the figures, the unstarted tasks and the
    command that goes on (``go_on``)."""
    from ..reporting import fmt

    budget = summary.budget or {}
    reached = budget.get("reached") or "budget"
    limit = (
        f"max_cost_usd {fmt.usd(budget['max_cost_usd'])}"
        if reached == "max_cost_usd"
        else f"max_tokens {fmt.count(budget.get('max_tokens'))}"
    )
    unstarted = summary.unstarted
    shown = ", ".join(unstarted[:20]) + (
        f", ... ({len(unstarted) - 20} more)" if len(unstarted) > 20 else ""
    )
    lines = [
        f"budget reached ({limit}): spent {fmt.usd(budget.get('spent_cost_usd', 0.0))} and "
        f"{fmt.count(budget.get('spent_tokens', 0))} tokens; no new task was started, the calls in "
        "flight finished.",
        f"{len(unstarted)} task(s) not started: {shown or 'none'}",
    ]
    if budget.get("max_cost_usd") is not None and budget.get("cost_unknown_attempts"):
        lines.append(
            f"note: {budget['cost_unknown_attempts']} attempt(s) have no known cost and are "
            "not counted against max_cost_usd (set `price:` on their agents)"
        )
    lines.append(
        f"to go on, run: {go_on} (each run has a budget of its own; raise it with --max-cost / "
        "--max-tokens, or budget: in the file, to do more in one run)"
    )
    return "\n".join(lines)


def interrupted_message(restart: bool, resume: str) -> str:
    """What to say after a clean stop: the state is saved, and the command that resumes
    (``resume``: without ``--restart``, which would run every finished task again)."""
    if restart:
        return (
            f"interrupted: state saved; to resume, run: {resume} "
            "(not the same command: with --restart, every task would run again)"
        )
    return f"interrupted: state saved; run the same command to resume: {resume}"


class _StopSignals:
    """What SIGINT and SIGTERM do in ``coditect run``, from the moment the command starts to
    the end of the process (the handlers are never put back).

    - Before the run starts (the project being loaded, the state opened; no task started):
      exit 130 at once, nothing was run.
    - While the run runs (after :meth:`attach`): the first cancels the run's task, a clean
      stop (the calls in flight are cancelled, their tasks recorded interrupted, the state
      committed, then exit 130); a second one exits 130 at once.
    - Once the run is over (its task done, its state committed): exit 130 at once.
    - Once Python is about to tear itself down (the last ``atexit`` call): ignored. Python
      resets its handlers to the default before it destroys its modules, so a signal in those
      last instants would otherwise kill the process (status -SIGINT or -SIGTERM, not 130);
      ignored, the process exits with the status it already has.
    """

    def __init__(self) -> None:
        self.hits = 0
        self.loop: Any = None
        self.task: Any = None
        self.before_stopping: Callable[[], None] | None = None
        """A live display's ``clear``: on the first signal, the loop erases the display, then
        the message is written (a message written under a live display would be drawn over)."""

    def install(self) -> _StopSignals:
        import atexit
        import signal

        global _ignore_at_exit_registered
        if not _ignore_at_exit_registered:  # once per process; runs after later-registered ones
            atexit.register(_ignore_stop_signals)
            _ignore_at_exit_registered = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handler)
        return self

    def attach(self, loop: Any, task: Any) -> None:
        """From now on a first signal cancels ``task`` (running on ``loop``)."""
        self.loop, self.task = loop, task

    def handler(self, signum: int, frame: object) -> None:
        import os

        self.hits += 1
        if self.task is None:
            _say(b"interrupted before the run started: nothing was run\n")
            os._exit(int(ExitCode.INTERRUPTED))
        if self.hits == 1 and not self.task.done():
            clear = self.before_stopping
            if clear is None:
                _say(STOPPING)
            else:  # on the loop, before the cancellation: the display is gone when we say it
                self.loop.call_soon_threadsafe(_clear_then_say, clear)
            self.loop.call_soon_threadsafe(self.task.cancel)
            return
        if self.before_stopping is not None:
            _say(b"\x1b[?25h")  # exiting at once under a live display: give the cursor back
        if self.hits == 1:
            _say(b"interrupted: exiting now; the run is over and its state saved\n")
        else:
            _say(b"interrupted again: exiting now; the next run resumes\n")
        os._exit(int(ExitCode.INTERRUPTED))


_ignore_at_exit_registered = False

STOPPING = (
    b"stopping: cancelling the calls in flight and saving the state (Ctrl-C again to quit at "
    b"once)\n"
)


def _clear_then_say(clear: Callable[[], None]) -> None:
    import contextlib
    import sys

    with contextlib.suppress(Exception):  # a display that cannot clear must not stop the stop
        clear()
        sys.stderr.flush()  # the erasing, written through Python's buffer, before our line
    _say(STOPPING)


def _ignore_stop_signals() -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _say(message: bytes) -> None:
    """Write ``message`` on stderr from a signal handler (a closed stderr is no reason to fail)."""
    import contextlib
    import os

    with contextlib.suppress(OSError):
        os.write(2, message)


def _install_stop_signals(loop: Any = None, task: Any = None) -> _StopSignals:
    """Install :class:`_StopSignals` (attached to ``task`` on ``loop`` if given); it stays
    installed to the end of the process."""
    stop = _StopSignals().install()
    if task is not None:
        stop.attach(loop, task)
    return stop


def _check_budget(
    project: Path,
    max_cost: float | None,
    state: Path | None,
    only: list[str] | None,
    agent: str | None,
    runner: str | None,
    ray_address: str | None,
    restart: bool,
    cache: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """With a cost budget: print the forecast's line; when its worst case exceeds the budget,
    ask on a terminal, and without one refuse (exit 2, nothing run) unless ``--yes``. Requests
    the call journal would answer (``cache``: ``--cache``) are forecast as free."""
    import sys

    from ..app.forecast import budget_verdict
    from ..errors import CoditectError
    from .forecast import summary_line

    try:
        verdict = budget_verdict(
            project,
            max_cost_usd=max_cost,
            state=state,
            only=only,
            agent=agent,
            runner=runner,
            ray_address=ray_address,
            restart=restart,
            cache=cache,
        )
    except (CoditectError, OSError):
        return  # a bad file, agent, state or runner: the run's own checks say it, as always
    if verdict is None:
        return
    err_console().print(Shown().markup(summary_line(verdict.forecast)), soft_wrap=True)
    if verdict.fits or yes:
        return
    reason = verdict.reason()
    if sys.stdin.isatty() and sys.stderr.isatty() and not as_json:
        if typer.confirm(f"{reason}. Run anyway?", default=False, err=True):
            return
        fail(f"{reason}; nothing run", ExitCode.BAD_INPUT, as_json=as_json)
    fail(
        f"{reason}; nothing run: pass --yes to run anyway (the budget still stops the run "
        "once reached), or raise the budget (--max-cost, budget: in the file)",
        ExitCode.BAD_INPUT,
        as_json=as_json,
    )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        project: ProjectArg = None,
        agent: Annotated[
            str | None,
            typer.Option("--agent", "-a", metavar="NAME", help="Run every task on this agent."),
        ] = None,
        only: Annotated[
            list[str] | None,
            typer.Option(
                "--only", metavar="ID", help="Run only this task (and what it needs); repeatable."
            ),
        ] = None,
        concurrency: Annotated[
            int | None, typer.Option("--concurrency", "-j", min=1, help="Tasks at once.")
        ] = None,
        restart: Annotated[
            bool,
            typer.Option(
                help="Run every task again from scratch, as a new run (history is kept); with "
                "--only, only the named tasks and every task that depends on them (those not "
                "selected run on the next run; the other tasks keep their results)."
            ),
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would run, and why; run nothing.")
        ] = False,
        fail_fast: Annotated[bool, typer.Option(help="Stop at the first failure.")] = False,
        state: Annotated[
            Path | None,
            typer.Option(
                metavar="FILE", help="State database (default: .coditect/state.db beside it)."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        runner: Annotated[
            str | None,
            typer.Option(
                metavar="local|ray", help="Where calls run (default: the file's runner:)."
            ),
        ] = None,
        ray_address: Annotated[
            str | None,
            typer.Option(
                metavar="ADDR",
                help="Ray cluster to use (implies --runner ray; default: RAY_ADDRESS).",
            ),
        ] = None,
        max_cost: Annotated[
            float | None,
            typer.Option(
                "--max-cost",
                min=0,
                metavar="USD",
                help="Budget in USD: start no new task once reached.",
            ),
        ] = None,
        max_tokens: Annotated[
            int | None,
            typer.Option(
                "--max-tokens", min=0, help="Budget in tokens: start no new task once reached."
            ),
        ] = None,
        verbose: Annotated[
            bool,
            typer.Option(
                "--verbose",
                "-v",
                help=f"List every task at the end (past {SUMMARY_ROWS} tasks, only those "
                "that did not simply succeed are listed).",
            ),
        ] = False,
        yes: Annotated[
            bool,
            typer.Option(
                "--yes", "-y", help="Run even if the worst-case cost forecast exceeds the budget."
            ),
        ] = False,
        cache: Annotated[
            bool,
            typer.Option(
                "--cache",
                help="Answer a request seen before from the call journal (zero cost), for "
                "agents with temperature 0 or unset; an agent's cache: decides for itself.",
            ),
        ] = False,
        keep_worktrees: Annotated[
            bool,
            typer.Option(
                "--keep-worktrees",
                help="Keep the git worktrees of tasks that change code after the run (under "
                "the repository's .git/coditect/worktrees), to look at them.",
            ),
        ] = False,
        replay: Annotated[
            int | None,
            typer.Option(
                "--replay",
                metavar="RUN_ID",
                help="Run every task again with the answers recorded up to run RUN_ID, no "
                "provider call; a request not in the journal fails its task.",
            ),
        ] = None,
    ) -> None:
        """Run every task not done yet, in dependency order.

        Resumes from the state kept beside the project file: tasks that succeeded are skipped
        unless their definition changed. Exit codes: 0 all done, 1 a task failed, 2 bad input,
        3 tasks wait on a person, 4 the environment failed (disk full, read-only, permission
        denied: fix it and run again), 130 interrupted (resumable). With --json, a failure
        prints {"error": ..., "exit_code": ...}. --dry-run writes nothing. A run that reaches
        its budget (--max-cost, --max-tokens or the file's budget:) starts no new task, lists
        those it did not start, and exits 1.

        Examples:

          coditect run examples/quickstart.yaml

          coditect run project.yaml --only TASK-003 --agent claude

          coditect run project.yaml --restart --concurrency 8 --json

          coditect run project.yaml --runner ray --ray-address auto

          coditect run project.yaml --max-cost 2.50

          coditect run project.yaml --restart --cache

          coditect run project.yaml --replay 3
        """
        # First thing: from here to the end of the process a signal means exit 130 (before the
        # run starts: at once; during it: a clean stop), never a death by the signal. Left to
        # Python's defaults until the run started, a SIGTERM while the project loaded (the
        # provider SDKs imported, the state opened: about half a second) killed the process.
        stop = _install_stop_signals()
        project = project_file(project, as_json=as_json)

        import asyncio
        import shlex

        from ..app.next_steps import next_steps
        from ..app.session import ProjectSession
        from ..errors import CoditectError, RunLockedError, WorkspaceError
        from ..orchestration.resume import KEPT
        from .live import LiveView, make_view
        from .run_summary import next_steps_json, print_next_steps, resume_command

        if dry_run:  # decided as a run would, with nothing written (the state read read-only)
            from ..app.forecast import dry_run as forecast_dry_run
            from .forecast import render_forecast

            try:
                plan, forecast, verdict = forecast_dry_run(
                    project,
                    max_cost_usd=max_cost,
                    state=state,
                    only=only,
                    agent=agent,
                    runner=runner,
                    ray_address=ray_address,
                    restart=restart,
                    cache=cache,
                )
            except (CoditectError, OSError) as error:  # bad file, unusable state, bad runner
                fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
            if as_json:
                print_json(
                    {
                        "run": list(plan.run),
                        "skip": list(plan.skip),
                        "reasons": plan.reasons,
                        "kept": list(plan.kept),
                        "forecast": forecast.to_dict(),
                        "budget": verdict.to_dict() if verdict else None,
                    }
                )
            else:  # one write: linear in the number of tasks
                kept = set(plan.kept)
                write_text(
                    "".join(f"would run  {tid}: {plan.reasons.get(tid, '')}\n" for tid in plan.run)
                    + "".join(
                        f"would skip {tid}: {KEPT if tid in kept else 'succeeded and unchanged'}\n"
                        for tid in plan.skip
                    )
                    + "\n"
                    + render_forecast(forecast)
                    + (f"{verdict.describe()}\n" if verdict else "")
                )
            raise typer.Exit(int(ExitCode.OK))

        if replay is None:  # a replay sends no request: nothing to forecast
            _check_budget(
                project,
                max_cost,
                state,
                only,
                agent,
                runner,
                ray_address,
                restart,
                cache,
                yes,
                as_json,
            )

        try:
            session = ProjectSession.open(
                project,
                state=state,
                only=only,
                agent=agent,
                runner=runner,
                ray_address=ray_address,
                max_cost_usd=max_cost,
                max_tokens=max_tokens,
            )
            if replay is not None:
                session.check_replay(replay)
        except (CoditectError, OSError) as error:  # bad file, unusable state, bad runner
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)

        async def main() -> RunOutcome:
            current = asyncio.current_task()
            assert current is not None
            # SIGTERM ends the run like Ctrl-C: cancel, record, exit 130; a second one: at once.
            stop.attach(asyncio.get_running_loop(), current)
            return await run_session()

        async def run_session() -> RunOutcome:
            async with session:
                total = len(session.orchestrator.tasks)
                # Live on a terminal (stderr, --json too), plain lines elsewhere.
                with make_view(total, as_json=as_json) as view:
                    session.orchestrator.add_observer(view)
                    if isinstance(view, LiveView):
                        stop.before_stopping = view.clear  # Ctrl-C: erase it, then say so
                    return await session.run(
                        max_concurrency=concurrency,
                        restart=restart,
                        fail_fast=fail_fast,
                        on_plan=view.planned,
                        cache=cache,
                        replay=replay,
                        keep_worktrees=keep_worktrees,
                    )

        try:
            outcome = asyncio.run(main())
        except RunLockedError as error:
            fail(str(error), ExitCode.BAD_INPUT, as_json=as_json)
        except WorkspaceError as error:  # the repository cannot be used: nothing ran
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        except (KeyboardInterrupt, asyncio.CancelledError):
            resume = resume_command()
            err_console().print(
                Shown()(interrupted_message(restart, resume)), markup=False, soft_wrap=True
            )
            if as_json:
                print_json(
                    {
                        "error": "interrupted",
                        "exit_code": int(ExitCode.INTERRUPTED),
                        "resume_command": resume,
                    }
                )
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except CoditectError as error:  # the state could not be written, the runner failed...
            fail_for(error, ExitCode.TASK_FAILED, as_json=as_json)
        except OSError as error:  # the environment, reached outside the store
            fail_for(error, ExitCode.TASK_FAILED, as_json=as_json)

        report = session.orchestrator.generate_report()
        code = exit_code_for(outcome.summary.counts, outcome.summary.cancelled)
        orchestrator = session.orchestrator
        steps = next_steps(orchestrator.tasks, orchestrator.results, outcome.summary)
        where = str(project)
        if as_json:
            print_json(
                {
                    **outcome.to_dict(),
                    "exit_code": int(code),
                    "tasks": report["tasks"],
                    "next": next_steps_json(steps, where),
                }
            )
        else:
            big = len(report["tasks"]) > SUMMARY_ROWS and not verbose
            listed = set(steps.attention) if big else None
            _summary_table(outcome, report, listed, shlex.join(["coditect", "tasks", where]))
            print_next_steps(steps, where)
        if outcome.summary.budget_stopped:
            err_console().print(
                Shown()(budget_message(outcome.summary, resume_command())),
                markup=False,
                soft_wrap=True,
            )
        raise typer.Exit(int(code))

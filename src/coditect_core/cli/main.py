"""The ``coditect`` command: one Typer app, one module per command group.

Command modules import the library lazily inside their functions, so ``coditect --help`` starts
fast and imports no provider SDK.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import agents, ask, cache, init, report, run, status, tasks_by_hand
from .output import setup_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="coditect",
    help="Run a software project's task graph on any LLM.\n\n"
    "Exit codes: 0 done; 1 a task failed (or, for doctor, an agent is not usable); 2 bad "
    "input (nothing was run); 3 tasks wait on a person; 4 the environment failed (disk full, "
    "read-only file system, permission denied: fix it and run again); 130 interrupted. With "
    '--json, a failure prints {"error": ..., "exit_code": ...} on stdout.',
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # a crash's report must not print keys or replies
    add_help_option=False,  # our own --help below
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_help(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(ctx.get_help())
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Info logs on stderr (keys masked)."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", "-vv", help="Debug logs on stderr (keys masked)."),
    ] = False,
    _help: Annotated[
        bool,
        typer.Option(
            "--help",
            "-h",
            is_eager=True,
            expose_value=False,
            callback=_show_help,
            help="Show this message and exit.",
        ),
    ] = False,
) -> None:
    # Flags only, defaulting to False: Typer coerces any other option value (a -v count, or its
    # own --help left unset as None) through pydantic, which would cost every command ~0.15 s.
    # So -vv is an option of its own (Click matches the whole '-vv' before splitting it).
    setup_logging(2 if debug else 1 if verbose else 0)


ask.register(app)
init.register(app)
run.register(app)
report.register(app)
status.register(app)
tasks_by_hand.register(app)
agents.register(app)
cache.register(app)


def main() -> None:
    """Console-script entry point.

    The last guard: a failure of the environment (disk full, read-only, permission denied)
    that a command did not turn into its message exits 4 with one line, never a traceback."""
    try:
        app()
    except Exception as error:
        from .output import ExitCode, environment_failure, fail_for

        if environment_failure(error) is None:
            raise
        try:
            fail_for(error, ExitCode.ENVIRONMENT, as_json="--json" in sys.argv[1:])
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None


if __name__ == "__main__":
    main()

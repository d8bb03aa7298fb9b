"""The ``coditect`` command: one Typer app, one module per command group.

Command modules import the library lazily inside their functions, so ``coditect --help`` starts
fast and imports no provider SDK.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from . import (
    agents,
    ask,
    cache,
    diff,
    forecast,
    init,
    plan,
    report,
    run,
    state,
    status,
    tasks_by_hand,
)
from .output import setup_logging
from .typer_style import Command, Group

__all__ = ["app", "main"]

app = typer.Typer(
    name="coditect",
    cls=Group,
    help="Run a software project's task graph on any LLM.\n\n"
    "PROJECT is a project file, or a folder holding a coditect.yaml; left out, it is "
    "./coditect.yaml (what `coditect init` writes).\n\n"
    "Exit codes: 0 done; 1 a task failed (or, for doctor, an agent is not usable); 2 bad "
    "input (nothing was run); 3 tasks wait on a person; 4 the environment failed (disk full, "
    "read-only file system, permission denied: fix it and run again); 130 interrupted. With "
    '--json, a failure prints {"error": ..., "exit_code": ...} on stdout.',
    no_args_is_help=True,
    add_completion=False,  # ours below: Typer's would cost every command pydantic
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # a crash's report must not print keys or replies
    add_help_option=False,  # our own --help below
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_help(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _shell() -> str:
    """The shell this runs in (its process, else $SHELL), as Typer's completion names it."""
    import shellingham  # type: ignore[import-untyped]  # Typer's, for its completion

    try:
        name: str = shellingham.detect_shell()[0]
    except shellingham.ShellDetectionFailure:
        name = os.path.basename(os.environ.get("SHELL", ""))
    return name.lower()


def _completion(ctx: typer.Context, param: Any, value: bool) -> None:
    """Typer's --install-completion / --show-completion, for the shell this runs in.

    Flags of our own rather than Typer's (``add_completion``): an option that is not a flag
    costs every command an import of pydantic (see ``_root``)."""
    if value and not ctx.resilient_parsing:
        from typer import completion

        completion.completion_init()
        act = completion.install_callback if "install" in param.name else completion.show_callback
        act(ctx, param, _shell())


def _show_version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from .. import __version__

        typer.echo(f"coditect {__version__}")
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
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=False,
            callback=_show_version,
            help="Show the version and exit.",
        ),
    ] = False,
    _install_completion: Annotated[
        bool,
        typer.Option(
            "--install-completion",
            is_eager=True,
            expose_value=False,
            callback=_completion,
            help="Install tab completion for the current shell (bash, zsh, fish, pwsh).",
        ),
    ] = False,
    _show_completion: Annotated[
        bool,
        typer.Option(
            "--show-completion",
            is_eager=True,
            expose_value=False,
            callback=_completion,
            help="Print the completion script for the current shell, to install it by hand.",
        ),
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


init.register(app)
plan.register(app)
agents.register(app)
run.register(app)
status.register(app)
report.register(app)
diff.register(app)
forecast.register(app)
tasks_by_hand.register(app)
state.register(app)
cache.register(app)
ask.register(app)

PANEL_OF = {
    "init": "Set up",
    "plan": "Set up",
    "agents": "Set up",
    "doctor": "Set up",
    "run": "Run",
    "status": "Inspect",
    "tasks": "Inspect",
    "show": "Inspect",
    "next": "Inspect",
    "report": "Inspect",
    "diff": "Inspect",
    "task": "By hand",
    "ask": "One-off",
    # issue 17's commands, placed before they land (a name not registered is never looked up)
    "forecast": "Run",
    "state": "Maintain",
    "cache": "Maintain",
}
"""Each command's group in the top-level help (see :mod:`.typer_style`)."""


def _styled(typer_app: typer.Typer) -> None:
    """Every command and group of ``typer_app`` written in :mod:`.typer_style`'s style."""
    for command in typer_app.registered_commands:
        command.cls = Command
        command.rich_help_panel = PANEL_OF.get(command.name or "", command.rich_help_panel)
    for group in typer_app.registered_groups:
        group.cls = Group
        sub = group.typer_instance
        if sub is not None:
            name = group.name or sub.info.name
            group.rich_help_panel = PANEL_OF.get(str(name), group.rich_help_panel)
            sub.info.cls = Group
            _styled(sub)


_styled(app)


def main() -> None:
    """Console-script entry point.

    The last guard: a failure of the environment (disk full, read-only, permission denied)
    that a command did not turn into its message exits 4 with one line, never a traceback."""
    if "_CODITECT_COMPLETE" in os.environ:  # the shell asks for completions (see _completion)
        from typer import completion

        completion.completion_init()
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

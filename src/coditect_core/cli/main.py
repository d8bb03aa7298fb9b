"""The ``coditect`` command: one Typer app, one module per command group.

Command modules import the library lazily inside their functions, so ``coditect --help`` starts
fast and imports no provider SDK.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import ask, init, report, run
from .output import setup_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="coditect",
    help="Run a software project's task graph on any LLM.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug logs (keys masked)."),
    ] = 0,
) -> None:
    setup_logging(verbose)


ask.register(app)
init.register(app)
run.register(app)
report.register(app)


def main() -> None:
    """Console-script entry point."""
    app()

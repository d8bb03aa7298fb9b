"""Everything the CLI shows: the Rich consoles, ``--json`` output, logging set-up, exit codes."""

from __future__ import annotations

import json
import logging
import sys
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ExitCode", "console", "err_console", "fail", "print_json", "setup_logging"]


class ExitCode(IntEnum):
    """The command's exit codes (see the README)."""

    OK = 0
    TASK_FAILED = 1
    BAD_INPUT = 2
    WAITING_ON_PERSON = 3
    INTERRUPTED = 130


_consoles: dict[str, Console] = {}


def console() -> Console:
    """Standard output. Rich honours ``NO_COLOR`` and plain output when not on a terminal."""
    if "out" not in _consoles:
        from rich.console import Console

        _consoles["out"] = Console(highlight=False)
    return _consoles["out"]


def err_console() -> Console:
    """Standard error, for messages and progress."""
    if "err" not in _consoles:
        from rich.console import Console

        _consoles["err"] = Console(stderr=True, highlight=False)
    return _consoles["err"]


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (one document, newline-terminated)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    from rich.markup import escape

    # soft_wrap: a long path or field name stays on one line (copyable, greppable).
    err_console().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, emoji=False)
    raise typer.Exit(int(code))


def setup_logging(verbosity: int) -> None:
    """``-v`` shows info, ``-vv`` debug; secrets are masked by the redacting filter."""
    from ..secrets import RedactingFilter

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("coditect_core")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

"""Everything the CLI shows: the Rich consoles, ``--json`` output, logging set-up, exit codes.

What came from outside (an agent, a tool, a file, a server) is shown through :class:`Shown`:
known secrets masked (:mod:`coditect_core.secrets`), control characters made visible
(:func:`coditect_core.reporting.fmt.inert`), Rich markup escaped where it goes into markup. The
consoles make every character they print inert as well, whatever the caller passed (a renderable
built from raw text included), and never turn ``:name:`` into an emoji; ``--json`` keeps the
exact text, escaped as JSON, secrets masked. An error is one line on stderr, and with ``--json``
also ``{"error": ..., "exit_code": ...}`` on stdout; a failure of the environment (disk full,
read-only file system, permission denied) exits with :attr:`ExitCode.ENVIRONMENT`.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
from collections.abc import Iterator
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

__all__ = [
    "ExitCode",
    "Shown",
    "console",
    "environment_failure",
    "err_console",
    "fail",
    "fail_for",
    "print_json",
    "setup_logging",
    "write_text",
]


class ExitCode(IntEnum):
    """The command's exit codes (see the README)."""

    OK = 0
    TASK_FAILED = 1
    BAD_INPUT = 2
    WAITING_ON_PERSON = 3
    ENVIRONMENT = 4
    """The environment failed: disk full, read-only file system, permission denied."""
    INTERRUPTED = 130


_consoles: dict[str, Console] = {}


def _make_console(*, stderr: bool) -> Console:
    from rich.console import Console

    from ..reporting.fmt import inert

    class InertConsole(Console):
        """A console that prints every character of text inert: a control character in a
        segment of text shows as ``\\x1b``; the console's own control sequences (colours,
        cursor moves of a live display) are not text and pass."""

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterator[Segment]:
            for segment in super().render(renderable, options):
                if segment.control or not segment.text:
                    yield segment
                else:
                    text = inert(segment.text)
                    yield segment if text is segment.text else segment._replace(text=text)

    return InertConsole(stderr=stderr, highlight=False, emoji=False)


def console() -> Console:
    """Standard output. Rich honours ``NO_COLOR`` and plain output when not on a terminal."""
    if "out" not in _consoles:
        _consoles["out"] = _make_console(stderr=False)
    return _consoles["out"]


def err_console() -> Console:
    """Standard error, for messages and progress."""
    if "err" not in _consoles:
        _consoles["err"] = _make_console(stderr=True)
    return _consoles["err"]


class Shown:
    """Text from outside as the command shows it, over the secrets known when it is made (make
    one after the project is loaded: its ``${VAR}`` secrets are registered then).

    ``shown(text)`` is plain text (print it with ``markup=False``); ``shown.markup(text)`` is
    the same escaped for a Rich markup string or a table cell.
    """

    def __init__(self) -> None:
        from ..secrets import known_secrets

        self.secrets = tuple(known_secrets())

    def __call__(self, text: object) -> str:
        from ..reporting.fmt import shown

        return shown("" if text is None else text, self.secrets)

    def markup(self, text: object) -> str:
        from rich.markup import escape

        return escape(self(text))


def write_text(text: str, *, err: bool = False) -> None:
    """Write ``text`` from outside (long, unstyled: an output, a listing) as it is shown, in
    time linear in its length: masked and inert, without Rich's layout."""
    out = err_console() if err else console()
    out.file.write(Shown()(text))
    out.file.flush()


def _json_document(data: Any) -> str:
    from ..reporting.fmt import json_inert, masked

    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    # A secret holding a quote or a backslash is in the document JSON-escaped.
    return json_inert(masked(text, encode=lambda s: json.dumps(s, ensure_ascii=False)[1:-1]))


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (one document, newline-terminated): the exact text of
    every value, known secrets masked, and no raw control character (all ``\\u`` escapes)."""
    sys.stdout.write(_json_document(data) + "\n")
    sys.stdout.flush()


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT, *, as_json: bool = False) -> NoReturn:
    """Print ``message`` as an error on stderr (and, ``as_json``, the JSON error object
    ``{"error": message, "exit_code": code}`` on stdout), then exit with ``code``."""
    # soft_wrap: a long path or field name stays on one line (copyable, greppable).
    err_console().print(f"[bold red]error:[/] {Shown().markup(message)}", soft_wrap=True)
    if as_json:
        print_json({"error": message, "exit_code": int(code)})
    raise typer.Exit(int(code))


# errno values and SQLite primary result codes that say the environment failed, and how.
_FULL = "the disk is full"
_READ_ONLY = "the file system or the file is read-only"
_DENIED = "permission denied"
_ERRNO_REASONS = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "a file grew past the largest size allowed",
    errno.EROFS: _READ_ONLY,
    errno.EACCES: _DENIED,
    errno.EPERM: _DENIED,
    errno.EIO: "an input/output error",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
}
_SQLITE_REASONS = {
    3: _DENIED,  # SQLITE_PERM
    8: _READ_ONLY,  # SQLITE_READONLY
    10: "a read or a write failed, the disk may be full",  # SQLITE_IOERR
    13: _FULL,  # SQLITE_FULL
    14: "a file cannot be opened, check the permissions",  # SQLITE_CANTOPEN
    22: "a file grew past the largest size allowed",  # SQLITE_NOLFS
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def environment_failure(error: BaseException) -> str | None:
    """How the environment failed, if that is what ``error`` (or an error it came from) says:
    a full disk, a read-only file system, a permission refused... None for any other error."""
    import sqlite3

    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[link.errno]
        code = getattr(link, "sqlite_errorcode", None)
        if isinstance(link, sqlite3.Error) and isinstance(code, int):
            reason = _SQLITE_REASONS.get(code & 0xFF)
            if reason is not None:
                return reason
    return None


def fail_for(
    error: BaseException,
    code: ExitCode = ExitCode.BAD_INPUT,
    *,
    as_json: bool = False,
    message: str | None = None,
) -> NoReturn:
    """Exit for ``error`` (saying ``message``, by default the error's): with
    :attr:`ExitCode.ENVIRONMENT` and what to do when the environment failed
    (:func:`environment_failure`), else with ``code``."""
    text = str(error) if message is None else message
    reason = environment_failure(error)
    if reason is None:
        fail(text, code, as_json=as_json)
    fail(
        f"{text}; the environment failed ({reason}): fix it, then run the same command again",
        ExitCode.ENVIRONMENT,
        as_json=as_json,
    )


class _Formatter(logging.Formatter):
    """Log lines made inert; a traceback only at ``-vv`` (else its last line)."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tracebacks = tracebacks

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return text if self.tracebacks else text.strip().splitlines()[-1]

    def format(self, record: logging.LogRecord) -> str:
        from ..reporting.fmt import inert

        if record.exc_text and not self.tracebacks:  # masked by the filter, already text
            record.exc_text = record.exc_text.strip().splitlines()[-1]
        return inert(super().format(record))


def setup_logging(verbosity: int) -> None:
    """``-v`` shows info, ``-vv`` debug (and tracebacks); secrets are masked by the redacting
    filter, control characters made inert."""
    from ..secrets import RedactingFilter

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(tracebacks=verbosity >= 2))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("coditect_core")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

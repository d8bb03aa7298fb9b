"""Running one external command for an agent: whatever it does, the call ends and stays small.

:func:`run_process` runs an argv (never a shell) in its own session with a minimal environment
(:func:`command_environment`), feeds it its input, and reads its stdout and stderr as they come,
into bounded buffers (:class:`OutputBuffer`: the head and the tail, the rest only counted), so
that a command writing faster than we read neither blocks nor grows this process. When the
command exits, times out or the call is cancelled, every process it started is ended
(:class:`~.process_tree.ProcessTree`: its process group, its descendants, and those that left
both but carry the run's marker), and only then are the pipes closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from subprocess import PIPE
from typing import cast

from ..errors import LlmConfigurationError, LlmTimeoutError
from .process_tree import ProcessTree, boot_ticks

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MAX_STDERR_BYTES",
    "PASSED_VARIABLES",
    "OutputBuffer",
    "ProcessResult",
    "command_environment",
    "run_process",
    "truncation_marker",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_BYTES = 1 << 20
"""What a command's stdout may keep (1 MiB): twice the longest reply a model gives in one turn
(128k output tokens are about 500 KB of text), small enough that a runaway command costs
nothing worth noticing and its reply stays readable in ``show`` and cheap in the store."""

DEFAULT_MAX_STDERR_BYTES = 64 << 10
"""What a command's stderr may keep (64 KiB); errors quote only its last lines."""

PASSED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
"""The variables of this process a command gets without being configured to: where programs
are, the user's home (configuration, a CLI's stored login), the locale, the temporary folder."""

TERM_GRACE_S = 1.0
"""How long the processes of a command get to exit on SIGTERM before SIGKILL."""

_LINGER_S = 1.0  # for the pipes to close once the command exited (or was ended)


def truncation_marker(dropped: int) -> bytes:
    """What stands in a kept output for the ``dropped`` bytes that were not kept."""
    return f"\n[... truncated: {dropped} bytes ...]\n".encode()


class OutputBuffer:
    """Keeps the first and the last ``limit // 2`` bytes written to it, and counts the rest.

    Memory stays under twice ``limit`` whatever is written; :meth:`getvalue` gives what was
    kept, with :func:`truncation_marker` where bytes were dropped.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tail_limit = limit // 2
        self._head_limit = limit - self._tail_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        """Bytes written."""

    def write(self, data: bytes) -> None:
        """Keep what fits of ``data``."""
        self.total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data and self._tail_limit:
            self._tail += data
            if len(self._tail) > 2 * self._tail_limit:  # trimmed now and then, not per write
                del self._tail[: -self._tail_limit]

    @property
    def dropped(self) -> int:
        """Bytes written but not kept."""
        return self.total - len(self._head) - min(len(self._tail), self._tail_limit)

    def getvalue(self) -> bytes:
        """The kept bytes, the marker between head and tail if any were dropped."""
        tail = bytes(self._tail[-self._tail_limit :]) if self._tail_limit else b""
        if not self.dropped:
            return bytes(self._head) + tail
        return bytes(self._head) + truncation_marker(self.dropped) + tail


def command_environment(
    env: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a command: :data:`PASSED_VARIABLES` from ``environ`` (default
    ``os.environ``; ``PATH`` defaults to :data:`os.defpath`), then ``env`` on top. Nothing
    else: no provider key reaches a command unless its configuration names it."""
    source = os.environ if environ is None else environ
    out = {name: source[name] for name in PASSED_VARIABLES if name in source}
    out.setdefault("PATH", os.defpath)
    out.update(env or {})
    return out


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a finished command left: exit status (negative: killed by that signal) and output
    (as kept: :class:`OutputBuffer`; ``*_dropped`` bytes were cut, a marker in their place)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    stdout_dropped: int = 0
    stderr_dropped: int = 0


class _Collector(asyncio.SubprocessProtocol):
    """Hands each chunk of the command's output to its buffer as it is read: the pipes are
    never paused, so the command never blocks on them and nothing piles up."""

    def __init__(self, stdout: OutputBuffer, stderr: OutputBuffer) -> None:
        self.buffers = {1: stdout, 2: stderr}
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()  # stdout and stderr at end of file
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.buffers[fd].write(cast(bytes, data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open:
            self.closed.set()

    def process_exited(self) -> None:
        self.exited.set()


async def _within(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _feed(transport: asyncio.SubprocessTransport, data: bytes | None) -> None:
    pipe = cast("asyncio.WriteTransport | None", transport.get_pipe_transport(0))
    if pipe is None:
        return
    if data:
        pipe.write(data)  # buffered by the transport; a command that exits first drops it
    pipe.close()


async def _settle(
    transport: asyncio.SubprocessTransport, collector: _Collector, tree: ProcessTree, name: str
) -> None:
    """End what is left of the command's processes, let the pipes drain, close them."""
    try:
        # In a thread: it sleeps through the grace period, and finishes even if we are
        # cancelled again meanwhile (the pipes keep being drained here all along).
        await asyncio.to_thread(tree.end, TERM_GRACE_S)
        if not await _within(collector.closed, _LINGER_S):
            logger.warning("%s: a process out of reach still holds its output pipes", name)
        await _within(collector.exited, _LINGER_S)
    finally:
        transport.close()


async def run_process(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (the process is killed at it, not just left)
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    provider: str = "command",
    max_stdout_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_stderr_bytes: int = DEFAULT_MAX_STDERR_BYTES,
) -> ProcessResult:
    """Run ``argv`` (no shell) in a new session, feed it ``stdin``, collect its output.

    The command's environment is :func:`command_environment` of ``env``. Its stdout and stderr
    keep at most ``max_stdout_bytes`` and ``max_stderr_bytes`` (head and tail). When it exits,
    on timeout and on cancellation, every process it started is ended (SIGTERM, then SIGKILL
    after :data:`TERM_GRACE_S`), wherever it went (:mod:`.process_tree`). A timeout raises
    :class:`LlmTimeoutError`; a command that cannot be started raises
    :class:`LlmConfigurationError`. A non-zero exit is returned, not raised.
    """
    if not argv:
        raise LlmConfigurationError("empty command", provider=provider)
    token = os.urandom(8).hex()
    child_env = command_environment(env)
    child_env.update(ProcessTree.environment(token, os.environ))
    stdout, stderr = OutputBuffer(max_stdout_bytes), OutputBuffer(max_stderr_bytes)
    loop = asyncio.get_running_loop()
    started, since = time.monotonic(), boot_ticks()
    try:
        transport, collector = await loop.subprocess_exec(
            lambda: _Collector(stdout, stderr),
            *argv,
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            cwd=cwd,
            env=child_env,
            start_new_session=True,
        )
    except FileNotFoundError as error:
        if cwd is not None and not os.path.isdir(cwd):  # noqa: ASYNC240 (one stat, on failure)
            raise LlmConfigurationError(
                f"the working directory {os.fspath(cwd)!r} of command {argv[0]!r} does not exist",
                provider=provider,
            ) from error
        raise LlmConfigurationError(
            f"command {argv[0]!r} not found: is it installed and on PATH?", provider=provider
        ) from error
    except PermissionError as error:
        raise LlmConfigurationError(
            f"command {argv[0]!r} cannot be executed: {error.strerror}", provider=provider
        ) from error
    tree = ProcessTree(transport.get_pid(), token, since)
    timed_out = False
    try:
        _feed(transport, stdin)
        try:
            async with asyncio.timeout(timeout):
                await collector.exited.wait()
        except TimeoutError:
            timed_out = True
        else:  # the pipes close with it, unless a process it left behind holds them
            await _within(collector.closed, _LINGER_S)
    finally:
        await _settle(transport, collector, tree, argv[0])
    duration = time.monotonic() - started
    if timed_out:
        raise LlmTimeoutError(
            f"command {argv[0]!r} did not finish within {timeout:g}s; "
            f"it was killed with its process group and every process it started",
            provider=provider,
        )
    code = transport.get_returncode()
    returncode = code if code is not None else -1
    logger.debug("%s ended (status %s) in %.3fs", argv[0], returncode, duration)
    return ProcessResult(
        returncode,
        stdout.getvalue(),
        stderr.getvalue(),
        duration,
        stdout.dropped,
        stderr.dropped,
    )

"""``CommandLlm``: an external command-line agent (``claude -p``, ``gemini -p``, ``codex exec``...).

The prompt goes to the command's stdin and its stdout is the reply. The command is an argv list,
never a shell string run by a shell; ``{model}`` in an argument is replaced by the model name.
The command runs in a new session (its own process group), so a timeout or a cancellation kills
it together with every child it started. A non-zero exit is an error carrying the end of its
stderr.

:func:`run_process` is the process runner underneath, shared with the legacy script protocol of
the orchestration layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LlmConfigurationError, LlmResponseError, LlmTimeoutError
from ..secrets import mask
from .base_llm import BaseLlm, CallParams, LlmResponse, Usage
from .messages import Message
from .retry import NO_RETRY, RetryPolicy

__all__ = ["CommandLlm", "ProcessResult", "render_prompt", "run_process", "stderr_tail"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a finished command left: exit status (negative: killed by that signal) and output."""

    returncode: int
    stdout: bytes
    stderr: bytes
    duration_s: float


def stderr_tail(stderr: bytes, limit: int = 2000) -> str:
    """The last ``limit`` characters of ``stderr``, decoded and stripped, known secrets masked
    (a command may print a key it was given; the text ends up in errors, logs and output)."""
    text = mask(stderr.decode("utf-8", errors="replace").strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def describe_exit(returncode: int) -> str:
    """``"exited with status 3"`` or ``"was killed by signal SIGKILL"``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with status {returncode}"


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (the process is killed at it, not just left)
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    provider: str = "command",
) -> ProcessResult:
    """Run ``argv`` (no shell) in its own process group, feed it ``stdin``, collect its output.

    On timeout, cancellation or any error while waiting, the whole process group is killed with
    SIGKILL and reaped before the exception propagates. A timeout raises
    :class:`LlmTimeoutError`; a command that cannot be started raises
    :class:`LlmConfigurationError`. A non-zero exit is returned, not raised.
    """
    if not argv:
        raise LlmConfigurationError("empty command", provider=provider)
    full_env = None if env is None else {**os.environ, **env}
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
        )
    except FileNotFoundError as error:
        raise LlmConfigurationError(
            f"command {argv[0]!r} not found: is it installed and on PATH?", provider=provider
        ) from error
    except PermissionError as error:
        raise LlmConfigurationError(
            f"command {argv[0]!r} cannot be executed: {error.strerror}", provider=provider
        ) from error
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await proc.communicate(stdin)
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        raise LlmTimeoutError(
            f"command {argv[0]!r} did not finish within {timeout:g}s; "
            f"it was killed with its process group",
            provider=provider,
        ) from None
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    duration = time.monotonic() - started
    returncode = proc.returncode if proc.returncode is not None else -1
    logger.debug("%s %s in %.3fs", argv[0], describe_exit(returncode), duration)
    return ProcessResult(returncode, stdout, stderr, duration)


def render_prompt(messages: Sequence[Message]) -> str:
    """Messages as one text for a command: a lone user turn as is, else labelled sections."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    labels = {"system": "Instructions", "user": "Request", "assistant": "Your previous answer"}
    return "\n\n".join(f"## {labels[m['role']]}\n\n{m['content']}" for m in messages)


class CommandLlm(BaseLlm):
    """A model reached by running a command: prompt on stdin, reply on stdout.

    ``command`` is an argv list (a string is split with :func:`shlex.split`, never run by a
    shell). ``env`` adds variables to the inherited environment; ``cwd`` is the working
    directory. ``timeout`` bounds each run; at the timeout the process group is killed. Retries
    are off unless ``retry`` is given: re-running an agent is rarely what a failure calls for.
    Token counts are not known, so usage is zero.
    """

    provider = "command"
    api_key_env = ()
    handles_timeout = True  # run_process kills the process group at the timeout

    def __init__(
        self,
        command: Sequence[str] | str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        stderr_chars: int = 2000,
        retry: RetryPolicy | None = None,
        **settings: Any,
    ) -> None:
        if isinstance(command, str):
            command = shlex.split(command)
        if not command:
            raise LlmConfigurationError(
                "CommandLlm needs a command (an argv list such as ['claude', '-p'])",
                provider=self.provider,
            )
        self.command: list[str] = [str(part) for part in command]
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.stderr_chars = stderr_chars
        super().__init__(
            model or os.path.basename(self.command[0]),
            api_key,
            retry=retry if retry is not None else NO_RETRY,
            **settings,
        )

    def argv(self, model: str) -> list[str]:
        """The command line of one call, ``{model}`` substituted."""
        return [part.replace("{model}", model) for part in self.command]

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        argv = self.argv(params.model)
        done = await run_process(
            argv,
            stdin=render_prompt(messages).encode("utf-8"),
            timeout=params.timeout,
            cwd=self.cwd,
            env=self.env,
            provider=self.provider,
        )
        if done.returncode != 0:
            tail = stderr_tail(done.stderr, self.stderr_chars) or "(nothing on stderr)"
            raise LlmResponseError(
                f"command {argv[0]!r} {describe_exit(done.returncode)}: {tail}",
                provider=self.provider,
                retryable=False,
            )
        text = done.stdout.decode("utf-8", errors="replace").strip()
        return LlmResponse(text=text, model=params.model, usage=Usage(), finish_reason="stop")

    def __repr__(self) -> str:
        return f"CommandLlm(command={self.command!r}, model={self.model!r})"

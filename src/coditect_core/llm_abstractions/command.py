"""``CommandLlm``: an external command-line agent (``claude -p``, ``gemini -p``, ``codex exec``...).

The prompt goes to the command's stdin and its stdout is the reply. The command is an argv list,
never a shell string run by a shell; ``{model}`` in an argument is replaced by the model name.
It runs through :func:`~.process.run_process`: in its own session, with only the variables its
configuration names (plus ``PATH``, ``HOME`` and the locale), its output read into bounded
buffers; when it ends, times out or is cancelled, every process it started ends with it. A
reply longer than ``max_output_bytes`` keeps its head and its tail around a
``[... truncated: N bytes ...]`` marker. A non-zero exit is an error carrying the end of its
stderr, secrets masked.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import LlmConfigurationError, LlmResponseError
from ..secrets import is_secret_variable, mask, register_secret
from .base_llm import BaseLlm, CallParams, LlmResponse, Usage
from .messages import Message
from .process import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_STDERR_BYTES, ProcessResult, run_process
from .retry import NO_RETRY, RetryPolicy

__all__ = [
    "CommandLlm",
    "ProcessResult",
    "describe_exit",
    "render_prompt",
    "run_process",
    "stderr_tail",
]
# ProcessResult and run_process live in .process; they are named here too for the callers of
# this module's first version.

logger = logging.getLogger(__name__)


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


def render_prompt(messages: Sequence[Message]) -> str:
    """Messages as one text for a command: a lone user turn as is, else labelled sections."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    labels = {"system": "Instructions", "user": "Request", "assistant": "Your previous answer"}
    return "\n\n".join(f"## {labels[m['role']]}\n\n{m['content']}" for m in messages)


class CommandLlm(BaseLlm):
    """A model reached by running a command: prompt on stdin, reply on stdout.

    ``command`` is an argv list (a string is split with :func:`shlex.split`, never run by a
    shell). The command's environment is ``PATH``, ``HOME``, the locale and ``TMPDIR``
    (:data:`~.process.PASSED_VARIABLES`) plus ``env``, and nothing else: a provider key the
    command needs is named there (in a project file, ``options: {env: {ANTHROPIC_API_KEY:
    "${ANTHROPIC_API_KEY}"}}``); the value of a secret-named variable (:func:`is_secret_variable`)
    is masked wherever text leaves the program. ``cwd`` is the working directory. ``timeout``
    bounds each run; at the timeout every process of the command is ended. The reply keeps at
    most ``max_output_bytes`` (head and tail around a truncation marker; the response's
    ``finish_reason`` is then ``"length"``). Retries are off unless ``retry`` is given:
    re-running an agent is rarely what a failure calls for. Token counts are not known, so
    usage is zero.
    """

    provider = "command"
    api_key_env = ()
    no_tools_reason: ClassVar[str] = "a command takes a prompt and answers text"
    handles_timeout = True  # run_process ends the command's processes at the timeout

    def __init__(
        self,
        command: Sequence[str] | str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, Any] | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
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
        if isinstance(max_output_bytes, bool) or not isinstance(max_output_bytes, int):
            raise LlmConfigurationError(
                f"max_output_bytes must be a whole number of bytes, not {max_output_bytes!r}",
                provider=self.provider,
            )
        if max_output_bytes < 1:
            raise LlmConfigurationError(
                f"max_output_bytes must be at least 1, not {max_output_bytes}",
                provider=self.provider,
            )
        self.command: list[str] = [str(part) for part in command]
        self.cwd = cwd
        self.env = _environment(env, self.provider)
        self.max_output_bytes = max_output_bytes
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

    async def _run(
        self,
        argv: list[str],
        stdin: bytes,
        timeout: float | None,  # noqa: ASYNC109 (run_process's: the command is ended at it)
        max_stdout_bytes: int,
    ) -> ProcessResult:
        """Run ``argv`` as this agent's commands run: its folder, environment and limits."""
        return await run_process(
            argv,
            stdin=stdin,
            timeout=timeout,
            cwd=self.cwd,
            env=self.env,
            provider=self.provider,
            max_stdout_bytes=max_stdout_bytes,
            max_stderr_bytes=max(DEFAULT_MAX_STDERR_BYTES, 8 * self.stderr_chars),
        )

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        argv = self.argv(params.model)
        stdin = render_prompt(messages).encode("utf-8")
        done = await self._run(argv, stdin, params.timeout, self.max_output_bytes)
        if done.returncode != 0:
            tail = stderr_tail(done.stderr, self.stderr_chars) or "(nothing on stderr)"
            raise LlmResponseError(
                f"command {argv[0]!r} {describe_exit(done.returncode)}: {tail}",
                provider=self.provider,
                retryable=False,
            )
        finish = "stop"
        if done.stdout_dropped:
            finish = "length"
            logger.warning(
                "%s: the reply was cut to %d of %d bytes (raise the agent's max_output_bytes)",
                argv[0],
                self.max_output_bytes,
                self.max_output_bytes + done.stdout_dropped,
            )
        text = done.stdout.decode("utf-8", errors="replace").strip()
        return LlmResponse(text=text, model=params.model, usage=Usage(), finish_reason=finish)

    def __repr__(self) -> str:
        return f"CommandLlm(command={self.command!r}, model={self.model!r})"


def _environment(env: Mapping[str, Any] | None, provider: str) -> dict[str, str]:
    """``env`` as the variables a command is given (strings; numbers are written out), each
    value of a secret-named variable registered as a secret of this process."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise LlmConfigurationError(
            f"env must be a mapping of variable names to values, not {type(env).__name__}",
            provider=provider,
        )
    out: dict[str, str] = {}
    for name, value in env.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise LlmConfigurationError(
                f"env.{name} must be a string, not {type(value).__name__}", provider=provider
            )
        out[str(name)] = str(value)
        if is_secret_variable(str(name)):
            register_secret(out[str(name)])
    return out

"""The built-in ``run_command`` tool: :class:`CommandToolset`.

A command is an argv list, never a shell string, and only one that an entry of the agent's
``allow_commands`` starts (an entry is a prefix of argv words: ``pytest`` allows
``pytest -q tests``, ``python -m pytest`` allows ``python -m pytest -x`` but not
``python -c ...``). It runs in the workspace folder through
:func:`~coditect_core.llm_abstractions.process.run_process`: a minimal environment (no provider
key, no variable the configuration did not pass), a timeout that ends its whole process tree,
output capped. Where the machine allows it (:mod:`.sandbox`), it runs without network, and able
to write only the workspace (not its ``.git``) and the temporary folder; where it cannot run
without network, a warning is logged, or with ``require_sandbox`` the call is refused.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import LlmConfigurationError, LlmTimeoutError, ToolArgumentsError, ToolError
from ..llm_abstractions.process import run_process
from ..llm_abstractions.tool_types import Tool
from .base import DEFAULT_MAX_RESULT_CHARS, FunctionToolset, ToolResult, Toolset, truncate_text
from .paths import ConfinedRoot
from .sandbox import detect_sandbox, sandboxed_argv

__all__ = [
    "COMMAND_TOOLS",
    "DEFAULT_COMMAND_TIMEOUT_S",
    "CommandToolset",
    "parse_allow_commands",
]

logger = logging.getLogger(__name__)

COMMAND_TOOLS: tuple[str, ...] = ("run_command",)
"""The built-in command tool (issue 15); offered only when an agent names it."""

DEFAULT_COMMAND_TIMEOUT_S = 300.0
"""How long a command may run unless the toolset or the call says otherwise."""

_STDERR_SHARE = 4  # stderr keeps a quarter of the output budget, stdout the rest: both fit


def parse_allow_commands(entries: Iterable[str | Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """``allow_commands`` entries as word tuples: a string is split like a shell would
    (``"python -m pytest"``), a list is taken as it is. An empty entry is refused."""
    out: list[tuple[str, ...]] = []
    for entry in entries:
        if isinstance(entry, str):
            try:
                words = tuple(shlex.split(entry))
            except ValueError as error:
                raise ToolArgumentsError(
                    f"allow_commands entry {entry!r} cannot be split into words: {error}",
                    tool="run_command",
                ) from None
        elif isinstance(entry, Sequence) and all(isinstance(w, str) for w in entry):
            words = tuple(entry)
        else:
            raise ToolArgumentsError(
                f"allow_commands entry {entry!r} must be a string or a list of strings",
                tool="run_command",
            )
        if not words or not all(words):
            raise ToolArgumentsError(f"allow_commands entry {entry!r} is empty", tool="run_command")
        out.append(words)
    return tuple(out)


class CommandToolset(Toolset):
    """``run_command`` confined to ``root``, for the commands ``allow_commands`` starts.

    ``env`` holds the variables the project passes to commands (on top of PATH, HOME, the
    locale and TMPDIR; nothing else of this process). ``timeout_s`` is the default and the
    longest a call may ask for. ``require_sandbox`` refuses every call when no network
    namespace can be made here. ``approve`` as in :class:`~.files.FileToolset`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        allow_commands: Iterable[str | Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        require_sandbox: bool = False,
        sandbox: bool = True,
        approve: Iterable[str] = (),
        max_output_chars: int = DEFAULT_MAX_RESULT_CHARS,
        name: str = "commands",
    ) -> None:
        self.name = name
        self.root = ConfinedRoot(root).root
        self.allow = parse_allow_commands(allow_commands)
        self.env = dict(env or {})
        if timeout_s <= 0:
            raise ToolArgumentsError("timeout_s must be positive", tool="run_command")
        self.timeout_s = timeout_s
        self.require_sandbox = require_sandbox
        self.use_sandbox = sandbox or require_sandbox
        self.approve = frozenset(approve)
        self.max_output_chars = max_output_chars
        self._functions = FunctionToolset(
            [self.run_command], name=name, max_result_chars=max_output_chars + 500
        )
        self._warned = False

    def tools(self) -> list[Tool]:
        return self._functions.tools()

    def needs_approval(self, name: str) -> bool:
        """Whether a call of tool ``name`` waits for a person's approval."""
        return name in self.approve

    def allowed(self, argv: Sequence[str]) -> bool:
        """Whether an entry of ``allow_commands`` starts ``argv``."""
        return any(tuple(argv[: len(entry)]) == entry for entry in self.allow)

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        if name not in COMMAND_TOOLS:
            return ToolResult.error(f"unknown tool {name!r}: this toolset has run_command")
        argv = arguments.get("argv")
        if isinstance(argv, str):
            return ToolResult.error(
                f"run_command: argv must be a list of words, not a shell string: {argv!r} "
                f"(no shell is used; say e.g. {shlex.split(argv) if _splits(argv) else ['cmd']})"
            )
        result = await self._functions.call(name, arguments)
        if not result.is_error and "[... truncated: " in result.content:
            return ToolResult(result.content, truncated=True)
        if result.is_error:
            prefix = f"{name} failed: "
            for kind in ("ToolArgumentsError", "ToolError"):
                if result.content.startswith(f"{prefix}{kind}: "):
                    rest = result.content[len(prefix) + len(kind) + 2 :]
                    return ToolResult.error(f"{name}: {rest}")
        return result

    async def run_command(self, argv: list[str], timeout_s: float | None = None) -> str:
        """Run a command in the workspace folder and answer its exit code and output. `argv` is
        a list of words (no shell: no pipes, globs or variables), e.g. ["pytest", "-q"]; only
        the commands this agent is allowed can run. `timeout_s` may shorten the time limit."""
        if not argv or not all(isinstance(w, str) and w for w in argv):
            raise ToolArgumentsError("argv must be a non-empty list of words", tool="run_command")
        if any("\x00" in w for w in argv):
            raise ToolArgumentsError("argv contains a NUL byte", tool="run_command")
        if not self.allowed(argv):
            allowed = ", ".join(repr(" ".join(e)) for e in self.allow) or "none"
            raise ToolError(
                f"command {shlex.join(argv)!r} is not allowed: allowed are commands starting "
                f"with {allowed}",
                tool="run_command",
            )
        limit = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        if limit <= 0:
            raise ToolArgumentsError("timeout_s must be positive", tool="run_command")
        full = list(argv)
        if self.use_sandbox:
            sandbox = await detect_sandbox()
            if sandbox.available:
                full = sandboxed_argv(
                    sandbox,
                    argv,
                    writable=[self.root, tempfile.gettempdir()],
                    read_only=[self.root / ".git"],
                )
                if not sandbox.files and not self._warned:
                    self._warned = True
                    logger.warning(
                        "commands run without network but may write outside the workspace: %s",
                        sandbox.files_reason,
                    )
            elif self.require_sandbox:
                raise ToolError(
                    f"command refused: require_sandbox is set and {sandbox.reason}",
                    tool="run_command",
                )
            elif not self._warned:
                self._warned = True
                logger.warning(
                    "commands run WITH network access: %s (set require_sandbox: true to "
                    "refuse them instead)",
                    sandbox.reason,
                )
        budget = max(self.max_output_chars - 300, 1024)  # room for the headers and markers
        try:
            done = await run_process(
                full,
                timeout=limit,
                cwd=self.root,
                env=self.env,
                provider="run_command",
                max_stdout_bytes=budget - budget // _STDERR_SHARE,
                max_stderr_bytes=budget // _STDERR_SHARE,
            )
        except LlmTimeoutError:
            raise ToolError(
                f"command {shlex.join(argv)!r} did not finish within {limit:g}s; it was "
                "killed with every process it started",
                tool="run_command",
            ) from None
        except LlmConfigurationError as error:
            raise ToolError(str(error), tool="run_command") from None
        stdout = done.stdout.decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
        parts = [f"exit code: {done.returncode}"]
        if stdout:
            parts.append(f"--- stdout ---\n{stdout}")
        if stderr:
            parts.append(f"--- stderr ---\n{stderr}")
        text, _ = truncate_text("\n".join(parts), self.max_output_chars)
        return text


def _splits(text: str) -> bool:
    try:
        return bool(shlex.split(text))
    except ValueError:
        return False

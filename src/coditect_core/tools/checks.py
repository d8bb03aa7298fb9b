"""Acceptance checks: a task's commands (tests, lint) run in its worktree, each a pass or a fail.

A check is an argv (never a shell) with a timeout. It runs through
:func:`~coditect_core.llm_abstractions.process.run_process`: the worktree as its directory, a
minimal environment (no provider key reaches it unless the project file passes it), its whole
process tree ended on exit or timeout, its output read into bounded buffers. What comes back is
a :class:`CheckResult`: the exit code and an excerpt of the output (head and tail, with a
"truncated" marker), short enough to send to a model and to store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import LlmConfigurationError, LlmTimeoutError
from ..llm_abstractions.process import OutputBuffer, run_process

__all__ = [
    "DEFAULT_CHECK_TIMEOUT_S",
    "DEFAULT_EXCERPT_BYTES",
    "Check",
    "CheckResult",
    "run_check",
    "run_checks",
]

logger = logging.getLogger(__name__)

DEFAULT_CHECK_TIMEOUT_S = 600.0
"""How long a check may run unless it says (``{run: [...], timeout: S}``): a test suite."""

DEFAULT_EXCERPT_BYTES = 8 << 10
"""What a check's output keeps (8 KiB, head and tail): a failing test's traceback and the
summary line, small enough to send back to a model turn after turn."""

_CHECK_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}


@dataclass(frozen=True, slots=True)
class Check:
    """One acceptance check: its argv and its timeout in seconds."""

    argv: tuple[str, ...]
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(part, str) and part for part in self.argv):
            raise ValueError("a check is a non-empty list of non-empty strings (an argv)")
        if not self.timeout_s > 0:
            raise ValueError(f"a check's timeout must be positive, not {self.timeout_s!r}")

    @property
    def command(self) -> str:
        """The argv as one line, for people (never run through a shell)."""
        return " ".join(self.argv)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one run of a check gave. ``passed`` when it exited 0 within its timeout."""

    command: str
    exit_code: int | None
    output_excerpt: str
    duration_s: float
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """The result as the model (and a failed task's error) reads it."""
        if self.timed_out:
            head = f"check `{self.command}` timed out after {self.duration_s:.1f}s"
        else:
            head = f"check `{self.command}` exited with status {self.exit_code}"
        return f"{head}\n{self.output_excerpt}".rstrip()


def _excerpt(stdout: bytes, stderr: bytes, limit: int) -> str:
    buffer = OutputBuffer(limit)
    buffer.write(stdout)
    if stderr:
        if stdout and not stdout.endswith(b"\n"):
            buffer.write(b"\n")
        buffer.write(stderr)
    return buffer.getvalue().decode(errors="replace")


async def run_check(
    check: Check,
    cwd: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    excerpt_bytes: int = DEFAULT_EXCERPT_BYTES,
) -> CheckResult:
    """Run one check in ``cwd``. A failing, missing or timed-out command is a result, not an
    error: the task's agent reads it and may fix what it shows."""
    started = time.monotonic()
    child_env = {**_CHECK_ENV, **(env or {})}
    try:
        result = await run_process(
            list(check.argv),
            timeout=check.timeout_s,
            cwd=cwd,
            env=child_env,
            provider="check",
            max_stdout_bytes=excerpt_bytes,
            max_stderr_bytes=excerpt_bytes,
        )
    except LlmTimeoutError:
        duration = time.monotonic() - started
        logger.info("check %s timed out after %.1fs", check.command, duration)
        return CheckResult(
            check.command,
            None,
            f"[killed after {check.timeout_s:g}s with every process it started]",
            duration,
            timed_out=True,
        )
    except LlmConfigurationError as error:
        return CheckResult(check.command, 127, error.message, time.monotonic() - started)
    excerpt = _excerpt(result.stdout, result.stderr, excerpt_bytes)
    logger.debug("check %s: status %s", check.command, result.returncode)
    return CheckResult(check.command, result.returncode, excerpt, result.duration_s)


async def run_checks(
    checks: Sequence[Check],
    cwd: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    excerpt_bytes: int = DEFAULT_EXCERPT_BYTES,
) -> list[CheckResult]:
    """Run ``checks`` in order, stopping at the first that fails; the results so far."""
    results: list[CheckResult] = []
    for check in checks:
        result = await run_check(check, cwd, env=env, excerpt_bytes=excerpt_bytes)
        results.append(result)
        if not result.passed:
            break
    return results

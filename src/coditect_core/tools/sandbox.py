"""The network sandbox of an agent's commands: a new, empty network namespace.

:func:`detect_sandbox` finds out once per process (one ``unshare -n true``, a few
milliseconds) whether this machine lets us make a network namespace: as root (``unshare -n``)
or through a user namespace (``unshare -rn``). :func:`sandboxed_argv` wraps an argv in it. In the
namespace only a loopback interface exists, brought up by a small helper (:mod:`._netns_exec`)
so that a command's own local servers (a test suite's stubs on 127.0.0.1) work, while nothing
outside the namespace, not even this machine's 127.0.0.1, can be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sandbox", "detect_sandbox", "sandboxed_argv"]

logger = logging.getLogger(__name__)

_HELPER = Path(__file__).with_name("_netns_exec.py")
_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What :func:`detect_sandbox` found: the argv prefix that runs a command without network
    (empty when none can be had) and, when none, why."""

    prefix: tuple[str, ...]
    reason: str = ""

    @property
    def available(self) -> bool:
        return bool(self.prefix)


_found: Sandbox | None = None
_lock = threading.Lock()


def _probe() -> Sandbox:
    unshare = shutil.which("unshare")
    if unshare is None:
        return Sandbox((), "the 'unshare' program (util-linux) is not installed")
    attempts = [["-n"], ["-rn"]] if os.geteuid() == 0 else [["-rn"], ["-n"]]
    problems: list[str] = []
    for flags in attempts:
        prefix = (unshare, *flags, "--", sys.executable, "-I", str(_HELPER))
        try:
            done = subprocess.run(
                [*prefix, "true"],
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
                env={"PATH": os.environ.get("PATH", os.defpath)},
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            problems.append(f"unshare {' '.join(flags)}: {error}")
            continue
        if done.returncode == 0:
            return Sandbox(prefix)
        problems.append(
            f"unshare {' '.join(flags)}: "
            f"{done.stderr.decode('utf-8', 'replace').strip() or done.returncode}"
        )
    return Sandbox((), "no network namespace can be made here (" + "; ".join(problems) + ")")


async def detect_sandbox(*, refresh: bool = False) -> Sandbox:
    """Whether commands can run without network here, found once per process."""
    return await asyncio.to_thread(_detect_once, refresh)


def _detect_once(refresh: bool) -> Sandbox:
    global _found
    with _lock:
        if _found is None or refresh:
            _found = _probe()
            if _found.available:
                logger.debug("command sandbox: %s", " ".join(_found.prefix[:2]))
            else:
                logger.debug("command sandbox unavailable: %s", _found.reason)
        return _found


def sandboxed_argv(sandbox: Sandbox, argv: Sequence[str]) -> list[str]:
    """``argv`` run in a new network namespace (unchanged when ``sandbox`` is unavailable)."""
    return [*sandbox.prefix, *argv]

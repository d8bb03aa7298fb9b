"""The sandbox of an agent's commands: a new, empty network namespace and, where it can be had,
a mount namespace in which only the workspace (and the temporary folder) can be written.

:func:`detect_sandbox` finds out once per process (a probe or two of ``unshare``, a few
milliseconds each) what this machine allows: namespaces as root (``unshare -n``) or through a
user namespace (``unshare -rn``), with a mount namespace (``-m``) or without.
:func:`sandboxed_argv` wraps an argv in what was found. Inside, a small helper
(:mod:`._sandbox_exec`) brings the loopback interface up, so that a command's own local servers
(a test suite's stubs on 127.0.0.1) work while nothing outside the namespace, not even this
machine's 127.0.0.1, can be reached; with the mount namespace it makes every mount read-only but
the folders given as writable, and their ``.git`` read-only again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sandbox", "detect_sandbox", "sandboxed_argv"]

logger = logging.getLogger(__name__)

_HELPER = Path(__file__).with_name("_sandbox_exec.py")
_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What :func:`detect_sandbox` found: the ``unshare`` program and its flags (empty when no
    namespace can be made here, ``reason`` saying why), and whether a mount namespace confines
    writes too (``files``; when not, ``files_reason`` says why)."""

    unshare: str = ""
    flags: tuple[str, ...] = ()
    files: bool = False
    reason: str = ""
    files_reason: str = ""

    @property
    def available(self) -> bool:
        """Whether commands can run without network."""
        return bool(self.flags)


_found: Sandbox | None = None
_lock = threading.Lock()


def _helper_argv(
    unshare: str, flags: Sequence[str], writable: Sequence[str], read_only: Sequence[str]
) -> list[str]:
    options: list[str] = []
    for folder in writable:
        options += ["--writable", folder]
    for path in read_only:
        options += ["--read-only", path]
    return [unshare, *flags, "--", sys.executable, "-I", "-S", str(_HELPER), *options, "--"]


def _works(argv: list[str]) -> str | None:
    """``None`` when ``argv`` runs and exits 0, else what went wrong."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
            env={"PATH": os.environ.get("PATH", os.defpath)},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"


def _probe() -> Sandbox:
    unshare = shutil.which("unshare")
    if unshare is None:
        return Sandbox(reason="the 'unshare' program (util-linux) is not installed")
    attempts = [("-n",), ("-rn",)] if os.geteuid() == 0 else [("-rn",), ("-n",)]
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="coditect-sandbox-probe-") as folder:
        for flags in attempts:
            files_flags = (f"{flags[0]}m",)
            check = [sys.executable, "-I", "-c", f"open({folder + '/w'!r}, 'w')"]
            problem = _works([*_helper_argv(unshare, files_flags, [folder], []), *check])
            if problem is None:
                return Sandbox(unshare, flags, files=True)
            files_problem = f"unshare {files_flags[0]}: {problem}"
            problem = _works([*_helper_argv(unshare, flags, [], []), "true"])
            if problem is None:
                return Sandbox(unshare, flags, files=False, files_reason=files_problem)
            problems.append(f"unshare {flags[0]}: {problem}")
    return Sandbox(reason="no network namespace can be made here (" + "; ".join(problems) + ")")


async def detect_sandbox(*, refresh: bool = False) -> Sandbox:
    """What sandbox commands can run in here, found once per process."""
    return await asyncio.to_thread(_detect_once, refresh)


def _detect_once(refresh: bool) -> Sandbox:
    global _found
    with _lock:
        if _found is None or refresh:
            _found = _probe()
            if not _found.available:
                logger.debug("command sandbox unavailable: %s", _found.reason)
            elif not _found.files:
                logger.debug("command sandbox without file confinement: %s", _found.files_reason)
        return _found


def sandboxed_argv(
    sandbox: Sandbox,
    argv: Sequence[str],
    *,
    writable: Sequence[str | os.PathLike[str]] = (),
    read_only: Sequence[str | os.PathLike[str]] = (),
) -> list[str]:
    """``argv`` run without network, and, when ``writable`` is given and the machine allows it,
    able to write only there (``read_only`` paths inside excepted). Unchanged when no sandbox
    is available."""
    if not sandbox.available:
        return list(argv)
    if writable and sandbox.files:
        flags = (f"{sandbox.flags[0]}m",)
        folders = [os.fspath(p) for p in writable]
        paths = [os.fspath(p) for p in read_only]
        return [*_helper_argv(sandbox.unshare, flags, folders, paths), *argv]
    return [*_helper_argv(sandbox.unshare, sandbox.flags, [], []), *argv]

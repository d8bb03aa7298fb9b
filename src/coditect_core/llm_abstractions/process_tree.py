"""The processes one command started, found and ended together, wherever they went.

A command runs in its own session and process group, and with a marker in its environment
(:data:`MARKER_VARIABLE`, holding a token unique to the run) that every process it starts
inherits. :class:`ProcessTree` finds the run's processes on Linux by reading ``/proc``: a
process belongs to the run when it started after the command did and

* it is in the command's process group or session (what ``kill -- -PID`` reaches), or
* it descends from the command (parent links, while the command is alive), or
* its environment holds the run's token: this one survives ``setsid``, a double fork and
  the death of every ancestor (a daemon reparented to init keeps its environment).

:meth:`ProcessTree.end` asks them to stop (SIGTERM), waits a grace period, then kills with
SIGKILL whatever is left, scanning again until nothing is (a process forked between a scan and
a kill is found by the next scan). Each signal goes through a pidfd opened and checked against
the process's start time, so a pid reused by an unrelated process is never signalled.

Limits. A process escapes when it leaves the group and the session, outlives its ancestry
link (the command exits, or it double-forks), *and* hides the token: it cleared or replaced
its environment (``env -i``), or it runs a set-user-ID program or marked itself undumpable
(its ``/proc/PID/environ`` cannot be read). Without ``/proc`` (macOS, the BSDs) only the
process group is ended.

Why not a cgroup or a subreaper: a cgroup is writable by a library only where the system
delegates one to it (a systemd user service, a privileged container) and moving a child into
it races the child's first fork; ``PR_SET_CHILD_SUBREAPER`` makes this whole process the
reaper of every orphan of every thread and library in it, which a library sharing its process
cannot claim. The scan needs neither, costs about a millisecond per hundred processes (only
processes younger than the command have their environment read) and runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER_VARIABLE", "ProcessTree", "boot_ticks"]

MARKER_VARIABLE = "CODITECT_PROCESS_TREE"
"""The environment variable that marks the processes of a command run: space-separated tokens,
the run's own last (a command started inside another keeps the outer run's tokens too)."""

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)  # Linux's; elsewhere unused
_KILL_ROUNDS = 50  # scans after SIGKILL; each finds what forked since the one before
_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class _Stat:
    ppid: int
    pgrp: int
    session: int
    start: int  # clock ticks after boot


def boot_ticks() -> int:
    """Now, in the clock ticks after boot that ``/proc/PID/stat`` gives start times in."""
    return int(time.clock_gettime(_CLOCK) * _TICKS)


def _stat(pid: int) -> _Stat | None:
    """The fields of ``/proc/PID/stat`` we need, or None if the process is gone or dead."""
    try:
        text = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = text.rsplit(b")", 1)[-1].split()  # after the command name, which may hold ") "
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):  # a zombie is dead: nothing to end
        return None
    return _Stat(int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def _tokens(pid: int) -> set[str]:
    """The tokens of :data:`MARKER_VARIABLE` in the environment ``pid`` started with."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return set()
    prefix = MARKER_VARIABLE.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return set(entry[len(prefix) :].decode("ascii", "replace").split())
    return set()


def _alive(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat.start == start


def _send(pid: int, start: int, sig: signal.Signals) -> None:
    """Signal ``pid`` if it is still the process that started at ``start``."""
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
    try:
        found = _stat(pid)  # read after the pidfd was opened: it names this very process
        if found is None or found.start != start:
            return
        with contextlib.suppress(OSError):
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
    finally:
        if pidfd is not None:
            os.close(pidfd)


class ProcessTree:
    """The processes of the command ``pid`` that was started with ``token`` in its
    :data:`MARKER_VARIABLE`, at or after ``since`` (:func:`boot_ticks` before it started).

    Every process found once stays known (by pid and start time), so that its own children
    are found through it after the command itself is gone."""

    def __init__(self, pid: int, token: str, since: int) -> None:
        self.pid = pid
        self.token = token
        self.since = since - 1  # start times are truncated to a tick
        self._known: dict[int, int] = {}

    @staticmethod
    def environment(token: str, environ: Mapping[str, str]) -> dict[str, str]:
        """The marker variable for a command started with ``token`` by a process whose
        environment is ``environ`` (an enclosing run's tokens are kept)."""
        outer = environ.get(MARKER_VARIABLE, "").split()
        return {MARKER_VARIABLE: " ".join([*outer, token])}

    def members(self) -> dict[int, int]:
        """The live processes of the run, as ``{pid: start time}`` (blocking: reads /proc)."""
        try:
            names = os.listdir(_PROC)
        except OSError:
            return {}
        me = os.getpid()
        young: dict[int, _Stat] = {}
        for name in names:
            if name.isdigit() and int(name) != me:
                stat = _stat(int(name))
                if stat is not None and stat.start >= self.since:
                    young[int(name)] = stat
        found = {
            pid
            for pid, stat in young.items()
            if self.pid in (stat.pgrp, stat.session) or self.token in _tokens(pid)
        }
        roots = {
            pid for pid, start in self._known.items() if pid in young and young[pid].start == start
        }
        found |= _descendants(young, roots | ({self.pid} & young.keys()))
        members = {pid: young[pid].start for pid in found}
        self._known.update(members)
        return members

    def _signal(self, members: Iterable[tuple[int, int]], sig: signal.Signals) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, sig)  # also reaches one forked since the scan (no /proc: all)
        for pid, start in members:
            _send(pid, start, sig)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except OSError:
            return False
        return True

    def end(self, grace: float) -> None:
        """End every process of the run: SIGTERM, up to ``grace`` seconds for them to exit,
        then SIGKILL until none is left. Blocking (run it in a thread); returns at once when
        nothing is left."""
        blind = not _PROC.is_dir()  # no /proc: the process group is all we can see
        members = self.members()
        if not members and not (blind and self._group_alive()):
            return
        self._signal(members.items(), signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            members = {pid: start for pid, start in members.items() if _alive(pid, start)}
            if not members and not (blind and self._group_alive()):
                break
            time.sleep(_POLL_S)
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the run, scanning again until none is left (bounded)."""
        members = {pid: start for pid, start in self._known.items() if _alive(pid, start)}
        for _ in range(_KILL_ROUNDS):
            self._signal(members.items(), signal.SIGKILL)
            members = self.members()
            if not members:
                return
            time.sleep(_POLL_S / 4)


def _descendants(processes: Mapping[int, _Stat], roots: Iterable[int]) -> set[int]:
    """``roots`` and their descendants among ``processes`` (by parent links)."""
    children: dict[int, list[int]] = {}
    for pid, stat in processes.items():
        children.setdefault(stat.ppid, []).append(pid)
    found = set(roots)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found

"""The run lock: at most one live run per project, and a dead process never keeps it.

The lock is an ``flock(2)`` exclusive lock on a small file next to the state database
(``state.db.<project>.lock``). We chose it over a lock row with a PID and a heartbeat because the
kernel releases an ``flock`` the moment its holder dies, however it dies (SIGKILL, OOM killer,
power cut of the process): there is no staleness to guess, no clock, no heartbeat thread, and no
risk of mistaking a recycled PID for the holder. A lock whose holder died is therefore simply
free, and the next run takes it over (logging whose it was). The holder writes its PID, host,
run id and start time into the file, so that a refused run can say who holds the lock.

An in-memory store (``StateStore.open(":memory:")``) is private to its process, so its runs are
excluded by a :class:`LocalLock` instead: the same interface, held in the store's memory.

Limits, stated plainly: ``flock`` is per host (on NFS it may not exclude another machine, where
SQLite itself is not safe either), and a child made by ``fork()`` without ``exec`` would inherit
the lock; coditect starts subprocesses with ``exec`` and the descriptor is not inheritable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunLockedError, StateError

__all__ = ["AnyLock", "LocalLock", "LockHolder", "RunLock", "lock_path_for", "pid_alive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds (or last held) a run lock."""

    pid: int
    host: str
    run_id: int | None = None
    since: float | None = None

    def describe(self) -> str:
        when = ""
        if self.since is not None:
            when = " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        run = f" (run {self.run_id})" if self.run_id is not None else ""
        return f"PID {self.pid} on host {self.host}{run}{when}"


def lock_path_for(db_path: Path, project: str) -> Path:
    """The lock file of ``project`` in the database at ``db_path``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", project)[:40]
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return db_path.with_name(f"{db_path.name}.{slug}-{digest}.lock")


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive, non-blocking, crash-released lock on one project's runs."""

    def __init__(self, path: Path, project: str) -> None:
        self.path = Path(path)
        self.project = project
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_id: int | None = None) -> LockHolder | None:
        """Take the lock or raise :class:`RunLockedError` naming its live holder.

        Returns the previous holder when the lock was taken over from a dead process.
        """
        if self._fd is not None:
            raise RunLockedError(f"project {self.project!r}: this store already holds its lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StateError(f"{self.path}: cannot open the run lock: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._wait_for_holder_info()
            who = holder.describe() if holder else "a process that has not yet said who it is"
            raise RunLockedError(
                f"project {self.project!r} is being run by {who}; wait for it to finish or stop "
                f"it (lock file {self.path})"
            ) from None
        except OSError as e:
            os.close(fd)
            raise StateError(f"{self.path}: cannot lock: {e.strerror}") from e
        previous = _parse(_read_all(fd))
        self._fd = fd
        self._write(LockHolder(os.getpid(), socket.gethostname(), run_id, time.time()))
        if previous is not None:
            logger.warning(
                "project %r: took over the run lock of %s, which is no longer running",
                self.project,
                previous.describe(),
            )
        return previous

    def set_run(self, run_id: int) -> None:
        """Record the run id in the lock file once the run row exists."""
        if self._fd is not None:
            self._write(LockHolder(os.getpid(), socket.gethostname(), run_id, time.time()))

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def holder(self) -> LockHolder | None:
        """The live holder as far as can be told without disturbing it, else None.

        Advisory (for display): reads the holder file and checks the PID on this host.
        """
        if self._fd is not None:
            return _parse(_read_all(self._fd))
        try:
            with open(self.path, "rb") as f:
                holder = _parse(f.read())
        except FileNotFoundError:
            return None
        if holder is None:
            return None
        if holder.host == socket.gethostname() and not pid_alive(holder.pid):
            return None
        return holder

    def _write(self, holder: LockHolder) -> None:
        assert self._fd is not None
        data = json.dumps(
            {"pid": holder.pid, "host": holder.host, "run_id": holder.run_id, "since": holder.since}
        ).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _wait_for_holder_info(self) -> LockHolder | None:
        # The holder writes its identity right after locking; give it a moment.
        for _ in range(20):
            try:
                with open(self.path, "rb") as f:
                    holder = _parse(f.read())
            except FileNotFoundError:
                holder = None
            if holder is not None:
                return holder
            time.sleep(0.01)
        return None


class LocalLock:
    """:class:`RunLock`'s interface for a store no other process can see: ``held`` is the
    store's set of projects with a live run (shared by every lock of that store)."""

    def __init__(self, held: dict[str, LockHolder], project: str) -> None:
        self._held = held
        self.project = project
        self._mine = False

    @property
    def held(self) -> bool:
        return self._mine

    def acquire(self, run_id: int | None = None) -> LockHolder | None:
        holder = self._held.get(self.project)
        if holder is not None:
            raise RunLockedError(
                f"project {self.project!r} is being run by {holder.describe()} (in memory)"
            )
        self._held[self.project] = LockHolder(
            os.getpid(), socket.gethostname(), run_id, time.time()
        )
        self._mine = True
        return None

    def set_run(self, run_id: int) -> None:
        if self._mine:
            self._held[self.project] = LockHolder(
                os.getpid(), socket.gethostname(), run_id, time.time()
            )

    def release(self) -> None:
        if self._mine:
            self._mine = False
            self._held.pop(self.project, None)

    def holder(self) -> LockHolder | None:
        return self._held.get(self.project)


AnyLock = RunLock | LocalLock


def _read_all(fd: int) -> bytes:
    return os.pread(fd, 4096, 0)


def _parse(data: bytes) -> LockHolder | None:
    try:
        raw = json.loads(data)
        return LockHolder(int(raw["pid"]), str(raw["host"]), raw.get("run_id"), raw.get("since"))
    except (ValueError, KeyError, TypeError):
        return None

"""WAL checkpoints of the state database, off the writer thread's path.

In WAL mode SQLite appends every commit to the ``-wal`` file and copies the pages back into the
database file at a *checkpoint*. By default the committing connection does it itself, inside the
commit that takes the WAL past 1000 pages: syncing and copying a few megabytes on the writer
thread while every caller waits for its answer (in ``bench/bench_store.py`` about a tenth of a
run's time, paid by a store on disk and not by one in memory). The store turns that off on the
writer's connection (``wal_autocheckpoint=0``) and checkpoints this way instead:

1. the writer tells the :class:`Checkpointer` about each commit; after about :data:`FRAMES` WAL
   pages (estimated from the pages per commit that the last pass found) it wakes its thread;
2. the thread runs a ``PASSIVE`` checkpoint on a connection of its own: it syncs the WAL and copies
   the pages committed since its last pass into the database file, while the writer goes on
   committing (``PASSIVE`` never blocks a reader or a writer). Pages committed during that copy
   are synced and copied by a further pass, and so on while a pass takes long (at most
   :data:`_FOLLOW_UPS` more);
3. a WAL starts over from its beginning (instead of growing) only once all of it was copied
   while nothing else was committed: so from time to time the writer runs a ``PASSIVE``
   checkpoint itself, between two batches (:meth:`Checkpointer.catch_up`; only the last few
   pages are left to sync and copy), and its next commit starts the WAL over. It does so when it
   has had nothing to write for :data:`IDLE_S` (a run waiting for its models: free), and at the
   latest once the WAL holds about :data:`RESTART_PASSES` times :data:`FRAMES` pages (a run that
   writes without a pause: a few milliseconds every few thousand pages). If the thread falls
   behind (a loaded machine, a slow disk), the writer does not wait for it past twice that: it
   estimates the WAL's pages from its own commits and checkpoints by itself, as SQLite would
   have done in every commit.

Durability is what it was: a checkpoint only moves committed pages from the WAL into the database
file, syncing the WAL first (the checkpointer's connection uses the writer's ``synchronous``). A
failed checkpoint is logged and retried at the next pass; the commits are already durable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["FRAMES", "IDLE_S", "RESTART_PASSES", "Checkpointer"]

logger = logging.getLogger(__name__)

#: WAL pages between checkpoint passes (SQLite's own default ``wal_autocheckpoint``).
FRAMES = 1000
#: WAL pages after which the writer starts the WAL over even without a pause, in passes
#: (:data:`FRAMES` pages each): 4 is 16 MB of WAL with 4 KB pages.
RESTART_PASSES = 4
#: Seconds without a write after which the writer starts the WAL over.
IDLE_S = 0.05
_MIN_EVERY, _MAX_EVERY = 16, FRAMES  # commits between passes, whatever the estimate says
# A pass syncs and copies what was committed during the pass before it: passes follow each other
# until one is short (little was committed meanwhile).
_FOLLOW_UPS, _SHORT_S = 3, 0.002


class Checkpointer:
    """Checkpoints the WAL of the database at ``path`` from a thread of its own."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = 5.0,
        frames: int | None = None,
    ) -> None:
        self._path = path
        self._frames = FRAMES if frames is None else frames
        self._restart_frames = RESTART_PASSES * self._frames
        self._conn = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=rw",
            uri=True,
            timeout=busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
        except BaseException:
            self._conn.close()
            raise
        self._every = max(_MIN_EVERY, self._frames // 16)  # commits between passes (adapted)
        self._commits = 0  # writer thread: commits since it last woke the thread
        self._since_start = 0  # writer thread: commits since the WAL last started over (about)
        self._requested_at = 0  # commits between the last two wake-ups
        self._busy = False  # a pass was asked for and is not done yet
        self._log = 0  # thread: WAL pages at its last pass
        self.catch_up_due = False
        """Set by the thread: the WAL is long, the writer should :meth:`catch_up` now."""
        self.restart_wanted = False
        """Set by the thread: the writer should :meth:`catch_up` when it is idle."""
        self.passes = 0
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"coditect-state-checkpoint:{path.name}", daemon=True
        )
        self._thread.start()

    # -- called by the writer thread --------------------------------------------------------

    def committed(self) -> None:
        """One more commit; wake the thread once enough pages were appended."""
        self._commits += 1
        self._since_start += 1
        if not self._busy and self._commits >= self._every:
            self._busy = True
            self._requested_at, self._commits = self._commits, 0
            self._wake.set()
        # _every commits make about _frames pages: past twice the start-over mark, do not wait.
        if self._since_start * self._frames >= 2 * self._restart_frames * self._every:
            self.catch_up_due = True

    @property
    def restart_pending(self) -> bool:
        """A pass runs, or is done and wants the writer to catch up once idle."""
        return self._busy or self.restart_wanted

    def catch_up(self, conn: sqlite3.Connection) -> None:
        """Copy what the thread's passes left (on the writer's own connection, between two
        batches), so that the next commit starts the WAL over."""
        self.catch_up_due = self.restart_wanted = False
        try:
            busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            logger.warning("%s: WAL checkpoint failed (retried later): %s", self._path, e)
            busy, log, done = 1, 1, 0
        if not busy and done == log:  # all copied: the next commit starts the WAL over
            self._since_start = 0
        else:  # the thread's pass holds the checkpoint, or a reader an old snapshot: later
            self._since_start = max(0, self._since_start - self._every)

    def close(self) -> None:
        """Stop the thread (after the pass under way, if any) and close its connection."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            commits = self._requested_at
            row = self._pass()
            if row is not None:
                log = row[1]
                grown = log - self._log if log >= self._log else log  # else: it started over
                self._log = log
                if grown > 0 and commits > 0:
                    every = int(self._frames * commits / grown)
                    self._every = max(_MIN_EVERY, min(_MAX_EVERY, every))
            for _ in range(_FOLLOW_UPS):  # what was committed meanwhile, while it is not little
                started = time.monotonic()
                if self._stopping or self._pass() is None:
                    break
                if time.monotonic() - started < _SHORT_S:
                    break
            if self._log >= self._restart_frames:
                self.catch_up_due = True
            else:
                self.restart_wanted = True
            self._busy = False

    def _pass(self) -> tuple[int, int, int] | None:
        """One ``PASSIVE`` checkpoint: ``(busy, WAL pages, pages copied)``, None if it failed."""
        self.passes += 1
        try:
            return self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            logger.warning("%s: WAL checkpoint failed (retried later): %s", self._path, e)
            return None

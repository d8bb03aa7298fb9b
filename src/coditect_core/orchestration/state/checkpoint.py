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
   its pages into the database file while the writer goes on committing (``PASSIVE`` never
   blocks a reader or a writer);
3. the pages committed during that copy are still only in the WAL, and a WAL starts over from its
   beginning only once all of it was copied; so the writer, between two batches, runs a
   ``PASSIVE`` checkpoint itself (:meth:`Checkpointer.catch_up`), which has only those few pages
   left to copy, and its next commit starts the WAL over.

Durability is what it was: a checkpoint only moves committed pages from the WAL into the database
file, syncing the WAL first (the checkpointer's connection uses the writer's ``synchronous``). A
failed checkpoint is logged and retried at the next pass; the commits are already durable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["FRAMES", "Checkpointer"]

logger = logging.getLogger(__name__)

#: WAL pages between checkpoints (SQLite's own default ``wal_autocheckpoint``).
FRAMES = 1000
_MIN_EVERY, _MAX_EVERY = 16, FRAMES  # commits between passes, whatever the estimate says


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
        self._commits = 0  # writer thread: commits since the last catch-up
        self._requested_at = 0  # writer thread: _commits when it asked for the running pass
        self._requested = False  # writer thread: a pass runs, or its catch-up is due
        self.catch_up_due = False
        """Set by the thread once a pass is done: the writer should :meth:`catch_up`."""
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
        if not self._requested and self._commits >= self._every:
            self._requested = True
            self._requested_at = self._commits
            self._wake.set()

    def catch_up(self, conn: sqlite3.Connection) -> None:
        """Copy what was committed during the last pass (on the writer's own connection, between
        two batches), so that the next commit starts the WAL over."""
        self.catch_up_due = False
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:
            logger.warning("%s: WAL checkpoint failed (retried later): %s", self._path, e)
        self._commits = 0
        self._requested = False

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
            try:
                row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as e:
                logger.warning("%s: WAL checkpoint failed (retried later): %s", self._path, e)
                row = None
            self.passes += 1
            if row is not None and row[1] > 0 and commits > 0:
                per_commit = row[1] / commits  # WAL pages now over commits since it started over
                every = int(self._frames / per_commit)
                self._every = max(_MIN_EVERY, min(_MAX_EVERY, every))
            self.catch_up_due = True

"""The state store's single writer thread: one connection, group commit, in submission order.

Every write is an *operation*: a function of the writer's :class:`sqlite3.Connection` that runs
ordinary SQL and returns a value, with no effect outside the database. Callers queue operations;
the thread takes everything queued so far, runs it in one transaction (``BEGIN IMMEDIATE``, each
operation inside a ``SAVEPOINT`` of its own), commits once, and only then answers every caller.
Concurrent tasks thus share a commit instead of paying one each. Operations are committed
strictly in the order they were queued, so what is queued after an operation is never committed
before it. An operation that raises is rolled back to its savepoint and fails alone; the others
of its transaction still commit. A failure of the transaction itself (the file cannot be
written, or another process keeps the write lock past the busy timeout) fails every operation of
that transaction, since none of them was written.

Two ways to queue:

* :meth:`Writer.submit` / :meth:`Writer.call` / :meth:`Writer.call_sync`: the caller waits for
  the answer, which always means "committed" ("a task is recorded as started before its call
  goes out").
* :meth:`Writer.post`: the caller does not wait (a task's result: what must follow it, a
  dependent's start, is queued later and therefore committed later). A posted write that fails
  does not vanish: the writer keeps its error, refuses every later *waited-for* write (not run;
  its caller gets a :class:`StateError` naming the failure), and raises the error itself from
  the next *reporting* operation: :meth:`Writer.flush`, a write queued with ``report=True`` (the
  end of a run), or :meth:`Writer.close`. Once reported it is forgotten. Later posted writes and
  solo operations still run (they record what did happen).

An operation marked *solo* runs alone, outside the group transaction, and manages its own (it
may have effects outside the database, like taking a lock, that must not be mixed with other
operations' fate).

Async callers get an ``asyncio`` future, settled on their own loop; sync callers block on a
``concurrent.futures`` future. WAL checkpoints are SQLite's own (``wal_autocheckpoint``, in the
commit that takes the WAL past 1000 pages).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StateError

__all__ = ["Operation", "Writer"]

logger = logging.getLogger(__name__)

Operation = Callable[[sqlite3.Connection], Any]

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, exception)``."""


@dataclass(slots=True)
class _Item:
    op: Operation
    solo: bool
    report: bool
    future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None  # None: posted
    loop: asyncio.AbstractEventLoop | None  # the loop of an asyncio future


def _nothing(conn: sqlite3.Connection) -> None:
    return None


class Writer:
    """Runs operations on ``conn`` in a dedicated thread, committing in groups, in order."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()  # None: stop
        self._lock = threading.Lock()  # _closed, and no item queued after the stop mark
        self._closed = False
        self._failure: BaseException | None = None  # a posted write's error, not yet reported
        self._thread = threading.Thread(
            target=self._run, name=f"coditect-state-writer:{path.name}", daemon=True
        )
        self._thread.start()

    def submit(
        self, op: Operation, *, solo: bool = False, report: bool = False
    ) -> asyncio.Future[Any]:
        """Queue ``op``; the future (of the running loop) is settled with its result once it is
        committed. ``report``: raise a posted write's failure instead."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._put(_Item(op, solo, report, future, loop))
        return future

    def post(self, op: Operation) -> None:
        """Queue ``op`` without waiting for it: committed after everything queued before it and
        before everything queued after it. Its failure is kept (see the module docstring)."""
        self._put(_Item(op, False, False, None, None))

    async def call(self, op: Operation, *, solo: bool = False, report: bool = False) -> Any:
        """Run ``op`` in the writer thread; return its result once it is committed."""
        return await self.submit(op, solo=solo, report=report)

    async def flush(self) -> None:
        """Return once everything queued before is committed; raise the error of a posted
        write that failed since the last report."""
        await self.submit(_nothing, report=True)

    def call_sync(self, op: Operation, *, solo: bool = False, report: bool = False) -> Any:
        """:meth:`call` for synchronous code (never from inside a running event loop's thread
        if that loop also awaits writes: it would block them)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_Item(op, solo, report, future, None))
        return future.result()

    def close(self) -> None:
        """Commit everything queued, stop the thread, close the connection; then raise the
        error of a posted write that failed and was not reported yet. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        self._conn.close()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise StateError(f"{self._path}: the state store is closed")
            self._queue.put(item)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:  # and whatever else is queued now
                    items.append(self._queue.get_nowait())
            group: list[_Item] = []
            for item in items:
                if item is None:  # the stop mark is always last
                    self._run_group(group)
                    return
                if item.solo:
                    self._run_group(group)
                    group = []
                    self._run_solo(item)
                else:
                    group.append(item)
            self._run_group(group)

    def _run_group(self, items: list[_Item]) -> None:
        """``items`` in one transaction, each in a savepoint of its own; one commit."""
        if not items:
            return
        conn = self._conn
        outcomes: list[Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in items:
                outcomes.append(self._run_one(item))
                if not conn.in_transaction:  # its error ended the whole transaction
                    raise outcomes[-1][1]
            conn.execute("COMMIT")
        except BaseException as e:
            self._rollback()
            error = self._wrap(e)
            outcomes = [self._lost(item, outcomes, i, error) for i, item in enumerate(items)]
        for item, outcome in zip(items, outcomes, strict=True):
            _deliver(item, outcome)

    def _run_one(self, item: _Item) -> Outcome:
        failure = self._failure
        if failure is not None and item.future is not None and not item.report:
            refused = StateError(f"{self._path}: not written, an earlier write failed: {failure}")
            refused.__cause__ = failure
            return (False, refused)
        conn = self._conn
        conn.execute("SAVEPOINT operation")
        try:
            result = item.op(conn)
        except Exception as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
            return self._settle(item, (False, self._wrap(e)))
        conn.execute("RELEASE operation")
        return self._settle(item, (True, result))

    def _lost(self, item: _Item, outcomes: list[Outcome], i: int, error: BaseException) -> Outcome:
        """What ``item`` gets when its transaction was not committed: ``error``, unless it had
        failed (or been refused) by itself already."""
        if i < len(outcomes) and not outcomes[i][0]:
            return outcomes[i]
        if item.future is None:
            if self._failure is None:
                self._failure = error
            logger.error("%s: a state write failed: %s", self._path, error)
        return (False, error)

    def _run_solo(self, item: _Item) -> None:
        try:
            outcome: Outcome = (True, item.op(self._conn))
        except BaseException as e:
            self._rollback()
            outcome = (False, self._wrap(e))
        _deliver(item, self._settle(item, outcome))

    def _settle(self, item: _Item, outcome: Outcome) -> Outcome:
        """Keep a posted write's failure; hand a kept failure to a reporting operation."""
        ok, value = outcome
        if item.future is None:
            if not ok:
                if self._failure is None:
                    self._failure = value
                logger.error("%s: a state write failed: %s", self._path, value)
        elif item.report and ok and self._failure is not None:
            outcome, self._failure = (False, self._failure), None
        return outcome

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _wrap(self, error: BaseException) -> BaseException:
        if isinstance(error, sqlite3.Error):
            wrapped = StateError(f"{self._path}: state database error: {error}")
            wrapped.__cause__ = error
            return wrapped
        return error


def _deliver(item: _Item, outcome: Outcome) -> None:
    """Answer the caller of ``item``, if one waits."""
    future = item.future
    if future is None:  # posted: nobody waits
        return
    if item.loop is None:
        assert isinstance(future, concurrent.futures.Future)
        _settle_future(future, outcome)
        return
    try:
        item.loop.call_soon_threadsafe(_settle_future, future, outcome)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        logger.debug("state writer: a caller's event loop closed before its answer")


def _settle_future(
    future: asyncio.Future[Any] | concurrent.futures.Future[Any], outcome: Outcome
) -> None:
    if future.done():  # cancelled by its caller; the write stands regardless
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)

"""The state store's single writer thread: one connection, group commit, in submission order.

Every write is an *operation*: a function of a :class:`~.bulk.Batch` (rows to write, and the
connection) that returns a value, with no effect outside the database. Callers queue operations;
the thread takes everything queued so far (up to :data:`MAX_BATCH`), runs it in one transaction,
commits, and only then answers. Operations are committed strictly in the order they were queued
(one batch after another, each in order), so what is queued after an operation is never
committed before it. Concurrent tasks share a commit instead of paying one each. If an operation
fails, the batch is rolled back and its operations are re-run one transaction each, so that one
bad write fails alone.

Two ways to queue:

* :meth:`Writer.submit` / :meth:`Writer.call` / :meth:`Writer.call_sync`: the caller waits for
  the answer, which always means "committed" ("a task is recorded as started before its call
  goes out").
* :meth:`Writer.post`: the caller does not wait (a task's result: what must follow it, a
  dependent's start, is queued later and therefore committed later). A posted write that fails
  does not vanish: the writer keeps its error, refuses every later *waited-for* write of the
  batched kind (not run; its caller gets a :class:`StateError` naming the failure), and raises
  the error itself from the next *reporting* operation: :meth:`Writer.flush`, a write queued with
  ``report=True`` (the end of a run), or :meth:`Writer.close`. Once reported it is forgotten.
  Later posted writes and solo operations still run (they record what did happen).

The thread remembers the next free row ids after each batch, so that the next batch of plain
transitions is a single autocommit statement (:mod:`.bulk`); if another connection took those
ids meanwhile, the batch is run again inside ``BEGIN IMMEDIATE`` with ids read afresh.

An operation marked *solo* runs alone and manages its own transaction (it may have effects
outside the database, like taking a lock, that must not be replayed).

Async callers get an ``asyncio`` future settled on their own loop (one wake-up per loop and
batch, not one per operation). Their operations are handed to the thread once per turn of their
event loop, all together, rather than one by one: fewer thread wake-ups, and the thread wakes
when the loop is about to wait rather than in the middle of its work (GIL contention). Sync
callers block on a ``concurrent.futures`` future (after handing over what their own thread's
loop queued, so the order holds for them too). With a :class:`~.checkpoint.Checkpointer`, the
thread tells it about each commit and runs its short catch-up between batches when it is due.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StateError
from .bulk import Batch, StaleIds
from .checkpoint import IDLE_S, Checkpointer

__all__ = ["MAX_BATCH", "Operation", "Writer"]

logger = logging.getLogger(__name__)

MAX_BATCH = 256

Operation = Callable[[Batch], Any]

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, exception)``."""


@dataclass(slots=True)
class _Item:
    op: Operation
    solo: bool
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None  # None: posted
    report: bool = False


_STOP = object()


def _nothing(batch: Batch) -> None:
    return None


class Writer:
    """Runs operations on ``conn`` in a dedicated thread, committing in groups, in order."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        on_rollback: Callable[[sqlite3.Connection], None] | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._conn = conn
        self._path = path
        self._on_rollback = on_rollback
        self._checkpointer = checkpointer
        self._queue: queue.SimpleQueue[_Item | list[_Item] | object] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._lock = threading.Lock()  # _pending and _closed (loops, sync callers, close)
        self._ids: tuple[int, int] | None = None  # next free ids, if known (see .bulk)
        self._failure: BaseException | None = None  # a posted write's error, not yet reported
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"coditect-state-writer:{path.name}", daemon=True
        )
        self._thread.start()

    def submit(
        self, op: Operation, *, solo: bool = False, report: bool = False
    ) -> asyncio.Future[Any]:
        """Queue ``op`` for the writer thread; the future (of the running loop) is settled with
        its result once it is committed. ``report``: raise a posted write's failure instead."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._add(loop, _Item(op, solo, loop, future, report))
        return future

    def post(self, op: Operation) -> None:
        """Queue ``op`` without waiting for it: committed after everything queued before it and
        before everything queued after it. Its failure is kept (see the module docstring)."""
        loop = asyncio.get_running_loop()
        self._add(loop, _Item(op, False, loop, None))

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
        with self._lock:
            if self._closed:
                raise StateError(f"{self._path}: the state store is closed")
            self._hand_over_mine()  # what this thread's loop queued comes first
            self._queue.put(_Item(op, solo, None, future, report))
        return future.result()

    def hand_over(self) -> None:
        """Give the thread now what the running loop (if any) queued during this turn: for
        code about to wait for the writer from another thread (``asyncio.to_thread(close)``)."""
        with self._lock:
            self._hand_over_mine()

    def _hand_over_mine(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        items = self._pending.pop(loop, None)
        if items:
            self._queue.put(items)

    def close(self) -> None:
        """Commit everything queued, stop the thread, close the connection; then raise the
        error of a posted write that failed and was not reported yet. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for items in self._pending.values():
                self._queue.put(items)
            self._pending.clear()
            self._queue.put(_STOP)
        self._thread.join()
        try:
            if self._checkpointer is not None:
                self._checkpointer.close()
        finally:
            self._conn.close()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _add(self, loop: asyncio.AbstractEventLoop, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise StateError(f"{self._path}: the state store is closed")
            items = self._pending.get(loop)
            if items is None:
                items = self._pending[loop] = []
                loop.call_soon(self._hand_over, loop)
            items.append(item)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the thread what this loop queued during its last turn."""
        with self._lock:
            items = self._pending.pop(loop, None)  # None: close() or call_sync() took them
            if items:
                self._queue.put(items)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backlog: deque[_Item] = deque()
        stopping = False
        checkpointer = self._checkpointer
        while backlog or not stopping:
            if not backlog:
                if checkpointer is not None and checkpointer.restart_pending:
                    taken = self._take(backlog, block=True, timeout=IDLE_S)
                    if taken is None:  # idle: a good moment to start the WAL over
                        if checkpointer.restart_wanted:
                            checkpointer.catch_up(self._conn)
                        continue
                    stopping = not taken
                else:
                    stopping = not self._take(backlog, block=True)
            while not stopping and len(backlog) < MAX_BATCH:  # whatever else is queued now
                if self._queue.empty():  # (cheaper than get_nowait's exception)
                    break
                taken = self._take(backlog, block=False)
                if taken is None:
                    break
                stopping = not taken
            if not backlog:
                continue
            first = backlog.popleft()
            batch = [first]
            if not first.solo:
                while backlog and not backlog[0].solo and len(batch) < MAX_BATCH:
                    batch.append(backlog.popleft())
            outcomes = self._run_solo(first) if first.solo else self._run_batch(batch)
            _deliver(batch, outcomes)
            if checkpointer is not None and checkpointer.catch_up_due:
                checkpointer.catch_up(self._conn)

    def _take(
        self, backlog: deque[_Item], *, block: bool, timeout: float | None = None
    ) -> bool | None:
        """Move one queue entry into ``backlog``: True, False for the stop mark, None if empty."""
        try:
            entry = self._queue.get(block, timeout)
        except queue.Empty:
            return None
        if entry is _STOP:
            return False
        if isinstance(entry, list):
            backlog.extend(entry)
        else:
            assert isinstance(entry, _Item)
            backlog.append(entry)
        return True

    def _run_solo(self, item: _Item) -> list[Outcome]:
        self._ids = None  # it may insert rows itself
        try:
            rows = Batch(self._conn, solo=True)
            result = item.op(rows)
            rows.commit()
            self._committed()
            outcome: Outcome = (True, result)
        except BaseException as e:
            if self._conn.in_transaction:
                self._rollback()
            outcome = (False, self._wrap(e))
        return [self._settle(item, outcome)]

    def _run_batch(self, batch: list[_Item]) -> list[Outcome]:
        if self._failure is None:
            try:
                try:
                    return self._commit(batch, self._ids)
                except StaleIds:  # another process wrote meanwhile: read the ids this time
                    self._rollback()
                    return self._commit(batch, None)
            except BaseException as e:
                self._rollback()
                if len(batch) == 1:
                    return [self._settle(batch[0], (False, self._wrap(e)))]
        # One failed (or a posted write failed before): each alone, in order, so that the
        # others still commit and nothing waited-for commits after a failed posted write.
        return [self._run_alone(item) for item in batch]

    def _run_alone(self, item: _Item) -> Outcome:
        failure = self._failure
        if failure is not None and item.future is not None and not item.report:
            refused = StateError(f"{self._path}: not written, an earlier write failed: {failure}")
            refused.__cause__ = failure
            return (False, refused)
        try:
            outcome = self._commit([item], None)[0]
        except BaseException as e:
            self._rollback()
            outcome = (False, self._wrap(e))
        return self._settle(item, outcome)

    def _commit(self, items: list[_Item], ids: tuple[int, int] | None) -> list[Outcome]:
        """Run ``items`` in one batch and commit it; remember the next free ids."""
        rows = Batch(self._conn, ids)
        results = [item.op(rows) for item in items]
        rows.commit()
        self._ids = rows.next_ids()
        self._committed()
        return [(True, r) for r in results]

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.committed()

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
        self._ids = None
        conn = self._conn
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if self._on_rollback is not None:
            try:
                self._on_rollback(conn)
            except sqlite3.Error:
                logger.exception("%s: could not refresh caches after a rollback", self._path)

    def _wrap(self, error: BaseException) -> BaseException:
        if isinstance(error, sqlite3.Error):
            wrapped = StateError(f"{self._path}: state database error: {error}")
            wrapped.__cause__ = error
            return wrapped
        return error


def _deliver(batch: list[_Item], outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Outcome]]] = {}
    for item, outcome in zip(batch, outcomes, strict=True):
        future = item.future
        if future is None:  # posted: nobody waits
            continue
        if item.loop is None:
            ok, value = outcome
            assert isinstance(future, concurrent.futures.Future)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        else:
            by_loop.setdefault(item.loop, []).append((item, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_futures, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.debug("state writer: a caller's event loop closed before its answer")


def _settle_futures(pairs: list[tuple[_Item, Outcome]]) -> None:
    for item, (ok, value) in pairs:
        future = item.future
        assert future is not None
        if future.done():  # cancelled by its caller; the write stands regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

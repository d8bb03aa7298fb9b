"""The state store's single writer thread: one connection, group commit, nothing acknowledged early.

Every write is an *operation*: a function of a :class:`~.bulk.Batch` (rows to write, and the
connection) that returns a value, with no effect outside the database. Callers queue operations
and wait for them; the thread takes everything queued so far (up to :data:`MAX_BATCH`), runs it
in one transaction, commits, and only then answers each caller. An answer therefore always
means "committed", which is what the orchestrator's ordering rules need ("recorded as started
before the call goes out"; "committed before any dependent starts"), while concurrent tasks
share a commit instead of paying one each. If an operation fails, the batch is rolled back and
its operations are re-run one transaction each, so that one bad write fails alone.

The thread remembers the next free row ids after each batch, so that the next batch of plain
transitions is a single autocommit statement (:mod:`.bulk`); if another connection took those
ids meanwhile, the batch is run again inside ``BEGIN IMMEDIATE`` with ids read afresh.

An operation marked *solo* runs alone and manages its own transaction (it may have effects
outside the database, like taking a lock, that must not be replayed).

Async callers get an ``asyncio`` future settled on their own loop (one wake-up per loop and
batch, not one per operation). Their operations are handed to the thread once per turn of their
event loop, all together, rather than one by one: fewer thread wake-ups, and the thread wakes
when the loop is about to wait rather than in the middle of its work (GIL contention). Sync
callers block on a ``concurrent.futures`` future.
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

from ...errors import StateError
from .bulk import Batch, StaleIds

__all__ = ["MAX_BATCH", "Operation", "Writer"]

logger = logging.getLogger(__name__)

MAX_BATCH = 256

Operation = Callable[[Batch], Any]


@dataclass(slots=True)
class _Item:
    op: Operation
    solo: bool
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]


_STOP = object()


class Writer:
    """Runs operations on ``conn`` in a dedicated thread, committing in groups."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        on_rollback: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._conn = conn
        self._path = path
        self._on_rollback = on_rollback
        self._queue: queue.SimpleQueue[_Item | list[_Item] | object] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._ids: tuple[int, int] | None = None  # next free ids, if known (see .bulk)
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"coditect-state-writer:{path.name}", daemon=True
        )
        self._thread.start()

    def submit(self, op: Operation, *, solo: bool = False) -> asyncio.Future[Any]:
        """Queue ``op`` for the writer thread; the future (of the running loop) is settled with
        its result once it is committed."""
        if self._closed:
            raise StateError(f"{self._path}: the state store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        items = self._pending.get(loop)
        if items is None:
            items = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        items.append(_Item(op, solo, loop, future))
        return future

    async def call(self, op: Operation, *, solo: bool = False) -> Any:
        """Run ``op`` in the writer thread; return its result once it is committed."""
        return await self.submit(op, solo=solo)

    def call_sync(self, op: Operation, *, solo: bool = False) -> Any:
        """:meth:`call` for synchronous code (never from inside a running event loop's thread
        if that loop also awaits writes: it would block them)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_Item(op, solo, None, future))
        return future.result()

    def close(self) -> None:
        """Finish the queued operations, stop the thread, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._conn.close()

    def _put(self, item: _Item) -> None:
        if self._closed:
            raise StateError(f"{self._path}: the state store is closed")
        self._queue.put(item)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the thread what this loop queued during its last turn."""
        items = self._pending.pop(loop, [])
        if not self._closed:
            self._queue.put(items)
            return
        for item in items:
            if not item.future.done():
                item.future.set_exception(StateError(f"{self._path}: the state store is closed"))

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backlog: deque[_Item] = deque()
        stopping = False
        while backlog or not stopping:
            if not backlog:
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

    def _take(self, backlog: deque[_Item], *, block: bool) -> bool | None:
        """Move one queue entry into ``backlog``: True, False for the stop mark, None if empty."""
        try:
            entry = self._queue.get() if block else self._queue.get_nowait()
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

    def _run_solo(self, item: _Item) -> list[tuple[bool, Any]]:
        self._ids = None  # it may insert rows itself
        try:
            rows = Batch(self._conn, solo=True)
            result = item.op(rows)
            rows.commit()
            return [(True, result)]
        except BaseException as e:
            if self._conn.in_transaction:
                self._rollback()
            return [(False, self._wrap(e))]

    def _run_batch(self, batch: list[_Item]) -> list[tuple[bool, Any]]:
        try:
            return self._commit(batch, self._ids)
        except StaleIds:  # another process wrote meanwhile: read the ids this time
            self._rollback()
            try:
                return self._commit(batch, None)
            except BaseException as e:
                error: BaseException = e
        except BaseException as e:
            error = e
        self._rollback()
        if len(batch) == 1:
            return [(False, self._wrap(error))]
        # One failed: replay each alone so that the others still commit.
        outcomes: list[tuple[bool, Any]] = []
        for item in batch:
            try:
                outcomes += self._commit([item], None)
            except BaseException as e:
                self._rollback()
                outcomes.append((False, self._wrap(e)))
        return outcomes

    def _commit(self, items: list[_Item], ids: tuple[int, int] | None) -> list[tuple[bool, Any]]:
        """Run ``items`` in one batch and commit it; remember the next free ids."""
        rows = Batch(self._conn, ids)
        results = [item.op(rows) for item in items]
        rows.commit()
        self._ids = rows.next_ids()
        return [(True, r) for r in results]

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


def _deliver(batch: list[_Item], outcomes: list[tuple[bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, tuple[bool, Any]]]] = {}
    for item, outcome in zip(batch, outcomes, strict=True):
        if item.loop is None:
            ok, value = outcome
            future = item.future
            assert isinstance(future, concurrent.futures.Future)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        else:
            by_loop.setdefault(item.loop, []).append((item, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.debug("state writer: a caller's event loop closed before its answer")


def _settle(pairs: list[tuple[_Item, tuple[bool, Any]]]) -> None:
    for item, (ok, value) in pairs:
        future = item.future
        if future.done():  # cancelled by its caller; the write stands regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

"""Row buffers that turn a batch of transitions into a few multi-row statements.

The writer thread runs many operations per transaction (:mod:`.writer`). Issued one statement
per row, SQLite's per-statement overhead dominates; here the operations of a batch append their
rows to a :class:`Batch`, which writes each kind of row with one multi-row ``INSERT ... VALUES``
or ``UPDATE ... FROM (VALUES ...)`` per chunk. Row ids that callers need at once (attempt ids,
the event id that orders successes) are assigned here from ``max(id) + 1``: the batch runs inside
a ``BEGIN IMMEDIATE`` transaction, so no other connection can insert meanwhile.

Two operations of one batch on the same task are applied in order: the second flushes the
buffers first. An operation that needs the connection itself (anything but a plain transition)
calls :meth:`Batch.flush` and then uses :attr:`Batch.conn`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ...errors import StateError

__all__ = ["Batch"]

_CHUNK = 64  # rows per statement at most; chunk sizes are powers of two (few distinct SQL texts)

_EVENTS = "INSERT INTO task_events(id, task_ref, run_id, status, at, note) VALUES {}"
_ATTEMPTS = (
    "INSERT INTO attempts(id, run_id, task_ref, agent, model, interface, started_at, status) "
    "VALUES {}"
)
_FINISH_ATTEMPTS = (
    "UPDATE attempts SET status = v.column2, finished_at = v.column3, error = v.column4, "
    "prompt_tokens = v.column5, completion_tokens = v.column6, latency_s = v.column7, "
    "cost = v.column8, output = v.column9 FROM (VALUES {}) AS v "
    "WHERE attempts.id = v.column1 AND attempts.status = 'running'"
)
_START_TASKS = (
    "UPDATE tasks SET status = v.column2, updated_at = v.column3, error = NULL, "
    "succeeded_hash = NULL, success_seq = NULL FROM (VALUES {}) AS v WHERE tasks.id = v.column1"
)
_COMPLETE_TASKS = (
    "UPDATE tasks SET status = v.column2, updated_at = v.column3, output = v.column4, "
    "error = NULL, succeeded_hash = tasks.content_hash, success_seq = v.column5 "
    "FROM (VALUES {}) AS v WHERE tasks.id = v.column1"
)
_OTHER_TASKS = (
    "UPDATE tasks SET status = v.column2, updated_at = v.column3, "
    "output = coalesce(v.column4, tasks.output), error = v.column5, succeeded_hash = NULL, "
    "success_seq = NULL FROM (VALUES {}) AS v WHERE tasks.id = v.column1"
)


@lru_cache(maxsize=256)
def _sql(template: str, rows: int, columns: int) -> str:
    one = "(" + ",".join("?" * columns) + ")"
    return template.format(",".join([one] * rows))


def _chunks(rows: Sequence[tuple[Any, ...]]) -> list[Sequence[tuple[Any, ...]]]:
    out = []
    i = 0
    while i < len(rows):
        n = min(_CHUNK, 1 << ((len(rows) - i).bit_length() - 1))
        out.append(rows[i : i + n])
        i += n
    return out


class Batch:
    """The rows of one transaction's transitions, written on :meth:`flush`."""

    __slots__ = (
        "_attempts",
        "_complete",
        "_events",
        "_finish",
        "_next_attempt",
        "_next_event",
        "_other",
        "_start",
        "_touched",
        "conn",
    )

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._next_event = self._next_attempt = 0
        self._clear()

    def _clear(self) -> None:
        self._events: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._finish: list[tuple[Any, ...]] = []
        self._start: list[tuple[Any, ...]] = []
        self._complete: list[tuple[Any, ...]] = []
        self._other: list[tuple[Any, ...]] = []
        self._touched: set[int] = set()

    def touch(self, ref: int) -> None:
        """Declare a transition of task row ``ref``; a second one in the batch flushes first."""
        if ref in self._touched:
            self.flush()
        self._touched.add(ref)

    def event(self, ref: int, run_id: int | None, status: str, at: float, note: str | None) -> int:
        if not self._next_event:
            self._next_event = _next_id(self.conn, "task_events")
        event_id = self._next_event
        self._next_event += 1
        self._events.append((event_id, ref, run_id, status, at, note))
        return event_id

    def attempt(
        self,
        run_id: int,
        ref: int,
        agent: str | None,
        model: str | None,
        interface: str | None,
        at: float,
    ) -> int:
        if not self._next_attempt:
            self._next_attempt = _next_id(self.conn, "attempts")
        attempt_id = self._next_attempt
        self._next_attempt += 1
        self._attempts.append((attempt_id, run_id, ref, agent, model, interface, at, "running"))
        return attempt_id

    def finish_attempt(self, row: tuple[Any, ...]) -> None:
        """``(id, status, finished_at, error, prompt_tokens, completion_tokens, latency_s,
        cost, output)``."""
        self._finish.append(row)

    def start_task(self, ref: int, status: str, at: float) -> None:
        self._start.append((ref, status, at))

    def complete_task(self, ref: int, status: str, at: float, output: str | None, seq: int) -> None:
        self._complete.append((ref, status, at, output, seq))

    def other_task(
        self, ref: int, status: str, at: float, output: str | None, error: str | None
    ) -> None:
        self._other.append((ref, status, at, output, error))

    def flush(self) -> None:
        """Write the buffered rows (events and attempts before the updates that need them).

        Row ids are read afresh afterwards, so an operation may insert rows itself between
        a flush and the next buffered row."""
        conn = self.conn
        if self._events:
            _write(conn, _EVENTS, 6, self._events)
        if self._attempts:
            _write(conn, _ATTEMPTS, 8, self._attempts)
        if self._finish:
            changed = _write(conn, _FINISH_ATTEMPTS, 9, self._finish)
            if changed != len(self._finish):
                ids = ", ".join(str(row[0]) for row in self._finish)
                raise StateError(f"attempt(s) not in flight (unknown or finished) among {ids}")
        if self._start:
            _write(conn, _START_TASKS, 3, self._start)
        if self._complete:
            _write(conn, _COMPLETE_TASKS, 5, self._complete)
        if self._other:
            _write(conn, _OTHER_TASKS, 5, self._other)
        self._clear()
        self._next_event = self._next_attempt = 0


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0])


def _write(
    conn: sqlite3.Connection, template: str, columns: int, rows: Sequence[tuple[Any, ...]]
) -> int:
    changed = 0
    for chunk in _chunks(rows):
        sql = _sql(template, len(chunk), columns)
        changed += conn.execute(sql, [v for row in chunk for v in row]).rowcount
    return changed

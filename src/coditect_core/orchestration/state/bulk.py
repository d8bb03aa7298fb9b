"""Transitions of a batch written by one statement: a per-connection TEMP table with triggers.

The writer thread runs many operations per transaction (:mod:`.writer`). Written one statement
per row, the Python round trips dominate, and each of them is a moment where the writer thread
must win the GIL back from the busy event loop. So the operations of a batch append *rows* to a
:class:`Batch`; :meth:`Batch.flush` sends them in one multi-row ``INSERT INTO temp.transitions``
per 64 rows, and ``BEFORE INSERT`` triggers (installed per connection by :func:`install`; TEMP,
so nothing of them is in the database file) turn each row, in order, into the real writes:
history events, task status updates, attempt inserts and updates. ``RAISE(IGNORE)`` keeps the
rows themselves out of the temp table. All of that runs inside SQLite, without the GIL.

Row ids that callers need at once (attempt ids, the event id that orders successes) are
assigned here from ``max(id) + 1``: a batch runs inside ``BEGIN IMMEDIATE``, so no other
connection can insert meanwhile. An operation that needs the connection itself (anything but a
plain transition) calls :meth:`Batch.flush` first and then uses :attr:`Batch.conn`.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from typing import Any

from ...errors import StateError

__all__ = ["Batch", "install"]

_CHUNK = 64  # rows per statement at most; chunk sizes are powers of two (few distinct SQL texts)

# kind: what a row does. Columns not used by a kind are NULL.
START, ATTEMPT, FINISH, COMPLETE, OTHER, EVENT = 1, 2, 3, 4, 5, 6
_COLUMNS = (
    "kind, ref, run_id, status, at, note, event_id, attempt_id, agent, model, interface, "
    "a_status, error, prompt_tokens, completion_tokens, latency_s, cost, output"
)
_WIDTH = len(_COLUMNS.split(","))

_SCHEMA = f"""
CREATE TEMP TABLE IF NOT EXISTS transitions ({_COLUMNS});

CREATE TEMP TRIGGER IF NOT EXISTS transition_start BEFORE INSERT ON transitions
WHEN new.kind = {START} BEGIN
    INSERT INTO task_events(id, task_ref, run_id, status, at, note)
        VALUES (new.event_id, new.ref, new.run_id, new.status, new.at, new.note);
    UPDATE tasks SET status = new.status, updated_at = new.at, error = NULL,
        succeeded_hash = NULL, success_seq = NULL WHERE id = new.ref;
    INSERT INTO attempts(id, run_id, task_ref, agent, model, interface, started_at, status)
        VALUES (new.attempt_id, new.run_id, new.ref, new.agent, new.model, new.interface,
                new.at, 'running');
    SELECT RAISE(IGNORE);
END;

CREATE TEMP TRIGGER IF NOT EXISTS transition_attempt BEFORE INSERT ON transitions
WHEN new.kind = {ATTEMPT} BEGIN
    INSERT INTO attempts(id, run_id, task_ref, agent, model, interface, started_at, status)
        VALUES (new.attempt_id, new.run_id, new.ref, new.agent, new.model, new.interface,
                new.at, 'running');
    SELECT RAISE(IGNORE);
END;

CREATE TEMP TRIGGER IF NOT EXISTS transition_finish BEFORE INSERT ON transitions
WHEN new.kind = {FINISH} BEGIN
    SELECT RAISE(ABORT, 'attempt not in flight') WHERE NOT EXISTS (
        SELECT 1 FROM main.attempts WHERE id = new.attempt_id AND status = 'running');
    UPDATE attempts SET status = new.a_status, finished_at = new.at, error = new.error,
        prompt_tokens = new.prompt_tokens, completion_tokens = new.completion_tokens,
        latency_s = new.latency_s, cost = new.cost, output = new.output
        WHERE id = new.attempt_id;
    SELECT RAISE(IGNORE);
END;

CREATE TEMP TRIGGER IF NOT EXISTS transition_complete BEFORE INSERT ON transitions
WHEN new.kind = {COMPLETE} BEGIN
    INSERT INTO task_events(id, task_ref, run_id, status, at, note)
        VALUES (new.event_id, new.ref, new.run_id, new.status, new.at, new.note);
    UPDATE tasks SET status = new.status, updated_at = new.at, output = new.output,
        error = NULL, succeeded_hash = content_hash, success_seq = new.event_id
        WHERE id = new.ref;
    SELECT RAISE(IGNORE);
END;

CREATE TEMP TRIGGER IF NOT EXISTS transition_other BEFORE INSERT ON transitions
WHEN new.kind = {OTHER} BEGIN
    INSERT INTO task_events(id, task_ref, run_id, status, at, note)
        VALUES (new.event_id, new.ref, new.run_id, new.status, new.at, new.note);
    UPDATE tasks SET status = new.status, updated_at = new.at,
        output = coalesce(new.output, output), error = new.error, succeeded_hash = NULL,
        success_seq = NULL WHERE id = new.ref;
    SELECT RAISE(IGNORE);
END;

CREATE TEMP TRIGGER IF NOT EXISTS transition_event BEFORE INSERT ON transitions
WHEN new.kind = {EVENT} BEGIN
    INSERT INTO task_events(id, task_ref, run_id, status, at, note)
        VALUES (new.event_id, new.ref, new.run_id, new.status, new.at, new.note);
    SELECT RAISE(IGNORE);
END;
"""


def install(conn: sqlite3.Connection) -> None:
    """Create the TEMP table and triggers on ``conn`` (once per connection)."""
    statements, current = [], ""
    for line in _SCHEMA.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    for statement in statements:
        conn.execute(statement)


@lru_cache(maxsize=16)
def _insert_sql(rows: int) -> str:
    one = "(" + ",".join("?" * _WIDTH) + ")"
    return f"INSERT INTO temp.transitions({_COLUMNS}) VALUES " + ",".join([one] * rows)


class Batch:
    """The transition rows of one transaction, written in order on :meth:`flush`."""

    __slots__ = ("_next_attempt", "_next_event", "_rows", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rows: list[tuple[Any, ...]] = []
        self._next_event = self._next_attempt = 0

    def _ids(self) -> None:
        self._next_event, self._next_attempt = self.conn.execute(
            "SELECT coalesce((SELECT max(id) FROM task_events), 0) + 1, "
            "coalesce((SELECT max(id) FROM attempts), 0) + 1"
        ).fetchone()

    def _event_id(self) -> int:
        if not self._next_event:
            self._ids()
        event_id = self._next_event
        self._next_event += 1
        return event_id

    def _attempt_id(self) -> int:
        if not self._next_attempt:
            self._ids()
        attempt_id = self._next_attempt
        self._next_attempt += 1
        return attempt_id

    def event(self, ref: int, run_id: int | None, status: str, at: float, note: str | None) -> int:
        """A history entry only (e.g. a task created on the fly)."""
        event_id = self._event_id()
        self._rows.append((EVENT, ref, run_id, status, at, note, event_id, *(None,) * (_WIDTH - 7)))
        return event_id

    def start(
        self,
        ref: int,
        run_id: int,
        status: str,
        at: float,
        note: str | None,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> int:
        """Task goes ``status`` (in progress), with a history entry and a new attempt: its id."""
        event_id, attempt_id = self._event_id(), self._attempt_id()
        self._rows.append(
            (START, ref, run_id, status, at, note, event_id, attempt_id, agent, model, interface,
             None, None, None, None, None, None, None)
        )  # fmt: skip
        return attempt_id

    def attempt(
        self,
        ref: int,
        run_id: int,
        at: float,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> int:
        """Another attempt of a task in progress: its id."""
        attempt_id = self._attempt_id()
        self._rows.append(
            (ATTEMPT, ref, run_id, None, at, None, None, attempt_id, agent, model, interface,
             None, None, None, None, None, None, None)
        )  # fmt: skip
        return attempt_id

    def finish_attempt(
        self,
        attempt_id: int,
        status: str,
        at: float,
        error: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency_s: float | None,
        cost: float | None,
        output: str | None,
    ) -> None:
        self._rows.append(
            (FINISH, None, None, None, at, None, None, attempt_id, None, None, None, status,
             error, prompt_tokens, completion_tokens, latency_s, cost, output)
        )  # fmt: skip

    def finish_task(
        self,
        ref: int,
        run_id: int,
        status: str,
        at: float,
        note: str | None,
        output: str | None,
        error: str | None,
        *,
        completed: bool,
    ) -> int:
        """Task reaches ``status``; ``completed`` records a success (hash, sequence number)."""
        event_id = self._event_id()
        self._rows.append(
            (COMPLETE if completed else OTHER, ref, run_id, status, at, note, event_id, None,
             None, None, None, None, error, None, None, None, None, output)
        )  # fmt: skip
        return event_id

    def flush(self) -> None:
        """Write the buffered rows, in order. Row ids are read afresh afterwards, so an
        operation may insert rows itself between a flush and the next buffered row."""
        rows, self._rows = self._rows, []
        self._next_event = self._next_attempt = 0
        i = 0
        while i < len(rows):
            n = min(_CHUNK, 1 << ((len(rows) - i).bit_length() - 1))
            chunk = rows[i : i + n]
            try:
                self.conn.execute(_insert_sql(n), [v for row in chunk for v in row])
            except sqlite3.IntegrityError as e:
                finishing = [r[7] for r in chunk if r[0] == FINISH]
                if "attempt not in flight" in str(e) and len(finishing) == 1:
                    raise StateError(
                        f"attempt {finishing[0]} is not in flight (unknown or finished)"
                    ) from e
                raise
            i += n

"""A batch's transitions written by one statement: a per-connection TEMP table with triggers.

The writer thread runs many operations per transaction (:mod:`.writer`). Written one statement
per row, the Python round trips dominate, and each of them is a moment where the writer thread
must win the GIL back from the busy event loop. So the operations of a batch append *rows* to a
:class:`Batch`, and the batch sends them as one multi-row ``INSERT INTO temp.transitions``;
``BEFORE INSERT`` triggers (installed per connection by :func:`install`; TEMP, so nothing of
them is in the database file) turn each row, in order, into the real writes: history events,
task status updates, attempt inserts and updates. ``RAISE(IGNORE)`` keeps the rows themselves
out of the temp table. All of that runs inside SQLite, without the GIL. A task's end is one row
(its attempt's end and its new status together), checked by ``changes()`` rather than a lookup.

Row ids that callers need at once (attempt ids, the event id that orders successes) are assigned
here, in Python, from the next free ids, two ways:

* *known ids* (the usual case): the writer remembers the next free ids from its last batch.
  Then the batch needs no transaction of its own: its one ``INSERT`` statement, in autocommit
  mode, is the transaction (all of its rows or none), and a batch costs SQLite one statement.
  If another process inserted rows meanwhile (another project in the same file), an id is
  taken: the statement fails on the primary key, changes nothing, and :class:`StaleIds` tells
  the writer to run the batch again the other way.
* *read ids*: ``BEGIN IMMEDIATE`` (no other connection can insert until the commit), read
  ``max(id) + 1``, write, ``COMMIT``.

An operation that needs the connection itself (anything but a plain transition) uses
:attr:`Batch.conn`, which first turns the batch into an explicit transaction (verifying any ids
already handed out) and writes the rows buffered so far, so that it sees every earlier write.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from typing import Any

from ..errors import StateError

__all__ = ["Batch", "StaleIds", "install"]

# kind: what a row does. No column is ever NULL: the sqlite3 module binds None several times
# slower than an int or a str (None takes its slow adaptation path, with two failed attribute
# lookups). Columns a kind does not use hold 0; NULL is written as 0 in a text column and as ''
# in a number column (a value those columns never hold otherwise), and the triggers read them
# back with nullif(). NOP rows (all 0) pad a statement to its size class.
NOP, START, ATTEMPT, FINISH, COMPLETE, OTHER, EVENT, DONE_COMPLETE, DONE_OTHER = range(9)
_FINISHING = (FINISH, DONE_COMPLETE, DONE_OTHER)
# a_*: the attempt's values; error/output: the task's.
_COLUMNS = (
    "kind", "ref", "run_id", "status", "at", "note", "event_id", "attempt_id", "agent", "model",
    "interface", "a_status", "a_error", "prompt_tokens", "completion_tokens", "latency_s", "cost",
    "a_output", "error", "output",
)  # fmt: skip
_TEXT = ("note", "agent", "model", "interface", "a_error", "a_output", "error", "output")
_NUMBER = ("run_id", "prompt_tokens", "completion_tokens", "latency_s", "cost")
_WIDTH = len(_COLUMNS)
_ATTEMPT_ID = _COLUMNS.index("attempt_id")


def _max_rows() -> int:
    """Rows per statement at most: 512, or fewer if this SQLite binds fewer parameters (before
    3.32 the limit was 999)."""
    probe = sqlite3.connect(":memory:")
    try:
        limit = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        probe.close()
    return max(1, min(512, limit // _WIDTH))


_MAX_ROWS = _max_rows()


def _t(value: str | None) -> str | int:
    """A text value as bound (NULL as 0)."""
    return 0 if value is None else value


def _n(value: float | None) -> float | str:
    """A number as bound (NULL as '')."""
    return "" if value is None else value


def _ended(
    error: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    latency_s: float | None,
    cost: float | None,
    output: str | None,
) -> tuple[Any, ...]:
    """An attempt's end as bound: a_error .. a_output."""
    return (
        _t(error),
        _n(prompt_tokens),
        _n(completion_tokens),
        _n(latency_s),
        _n(cost),
        _t(output),
    )


# {name}: how a trigger reads column ``name`` (NULL restored).
_READ = {
    **{c: f"new.{c}" for c in _COLUMNS},
    **{c: f"nullif(new.{c}, 0)" for c in _TEXT},
    **{c: f"nullif(new.{c}, '')" for c in _NUMBER},
}

_EVENT = """
    INSERT INTO task_events(id, task_ref, run_id, status, at, note)
        VALUES ({event_id}, {ref}, {run_id}, {status}, {at}, {note});"""
_NEW_ATTEMPT = """
    INSERT INTO attempts(id, run_id, task_ref, agent, model, interface, started_at, status)
        VALUES ({attempt_id}, {run_id}, {ref}, {agent}, {model}, {interface}, {at}, 'running');"""
_END_ATTEMPT = """
    UPDATE attempts SET status = {a_status}, finished_at = {at}, error = {a_error},
        prompt_tokens = {prompt_tokens}, completion_tokens = {completion_tokens},
        latency_s = {latency_s}, cost = {cost}, output = {a_output}
        WHERE id = {attempt_id} AND status = 'running';
    SELECT RAISE(ABORT, 'attempt not in flight') WHERE changes() = 0;"""
_STARTED = """
    UPDATE tasks SET status = {status}, updated_at = {at}, error = NULL,
        succeeded_hash = NULL, success_seq = NULL WHERE id = {ref};"""
_COMPLETED = """
    UPDATE tasks SET status = {status}, updated_at = {at}, output = {output},
        error = NULL, succeeded_hash = content_hash, success_seq = {event_id}
        WHERE id = {ref};"""
_OTHER = """
    UPDATE tasks SET status = {status}, updated_at = {at},
        output = coalesce({output}, output), error = {error}, succeeded_hash = NULL,
        success_seq = NULL WHERE id = {ref};"""

_BODIES = {
    NOP: "",
    START: _EVENT + _STARTED + _NEW_ATTEMPT,
    ATTEMPT: _NEW_ATTEMPT,
    FINISH: _END_ATTEMPT,
    COMPLETE: _EVENT + _COMPLETED,
    OTHER: _EVENT + _OTHER,
    EVENT: _EVENT,
    DONE_COMPLETE: _END_ATTEMPT + _EVENT + _COMPLETED,
    DONE_OTHER: _END_ATTEMPT + _EVENT + _OTHER,
}

# One trigger per kind: the first trigger to RAISE(IGNORE) abandons any other for the row.
_SCHEMA = [
    f"CREATE TEMP TABLE IF NOT EXISTS transitions ({', '.join(_COLUMNS)})",
    *(
        f"CREATE TEMP TRIGGER IF NOT EXISTS transition_{kind} BEFORE INSERT ON transitions\n"
        f"WHEN new.kind = {kind} BEGIN{body.format_map(_READ)}\n    SELECT RAISE(IGNORE);\nEND"
        for kind, body in _BODIES.items()
    ),
]


def install(conn: sqlite3.Connection) -> None:
    """Create the TEMP table and triggers on ``conn`` (once per connection)."""
    for statement in _SCHEMA:
        conn.execute(statement)


_PAD = (NOP,) + (0,) * (_WIDTH - 1)


def _statement_rows(rows: int) -> int:
    """The size class of a statement for ``rows`` rows (few distinct SQL texts; NOP pads)."""
    if rows <= 8:
        return rows
    step = 8 if rows <= 64 else 64
    return -(-rows // step) * step


@lru_cache(maxsize=32)
def _insert_sql(rows: int) -> str:
    one = "(" + ",".join("?" * _WIDTH) + ")"
    return f"INSERT INTO temp.transitions({', '.join(_COLUMNS)}) VALUES " + ",".join([one] * rows)


class StaleIds(Exception):
    """The ids the batch took from the writer's memory are taken: run it again reading ids."""


class Batch:
    """The transition rows of one transaction, written in order.

    ``ids`` is the writer's ``(next event id, next attempt id)`` from its last batch, or None
    (then ids are read inside an explicit transaction). ``solo`` batches are handed the bare
    connection and manage their own transaction; they may not buffer rows.
    """

    __slots__ = (
        "_conn",
        "_first_ids",
        "_next_attempt",
        "_next_event",
        "_rows",
        "_solo",
        "_txn",
    )

    def __init__(
        self, conn: sqlite3.Connection, ids: tuple[int, int] | None = None, *, solo: bool = False
    ) -> None:
        self._conn = conn
        self._solo = solo
        self._txn = False
        self._rows: list[Any] = []  # flat: _WIDTH values per row
        self._next_event, self._next_attempt = ids or (0, 0)
        self._first_ids = ids

    # -- the connection ----------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, inside the batch's transaction, with every buffered row written."""
        if self._solo:
            return self._conn
        self._begin()
        self.flush()
        return self._conn

    def unflushed(self) -> sqlite3.Connection:
        """The connection inside the batch's transaction, the buffered rows not yet written:
        for statements that do not depend on them (creating a task row)."""
        if not self._solo:
            self._begin()
        return self._conn

    def _begin(self) -> None:
        """Turn the batch into an explicit transaction; verify ids already handed out."""
        if self._txn:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._txn = True
        if self._first_ids is None:
            return
        first_event, first_attempt = self._first_ids
        if (first_event, first_attempt) == (self._next_event, self._next_attempt):
            self._next_event = self._next_attempt = 0  # none handed out: read them afresh
            return
        max_event, max_attempt = self._max_ids()
        if max_event >= first_event or max_attempt >= first_attempt:
            raise StaleIds

    def _max_ids(self) -> tuple[int, int]:
        row = self._conn.execute(
            "SELECT coalesce((SELECT max(id) FROM task_events), 0), "
            "coalesce((SELECT max(id) FROM attempts), 0)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def _read_ids(self) -> None:
        self._begin()
        max_event, max_attempt = self._max_ids()
        self._next_event, self._next_attempt = max_event + 1, max_attempt + 1

    def next_ids(self) -> tuple[int, int] | None:
        """The next free ids once this batch is committed, if known."""
        if self._next_event and self._next_attempt:
            return self._next_event, self._next_attempt
        return None

    # -- rows --------------------------------------------------------------------------------

    def _event_id(self) -> int:
        if not self._next_event:
            self._read_ids()
        event_id = self._next_event
        self._next_event += 1
        return event_id

    def _attempt_id(self) -> int:
        if not self._next_attempt:
            self._read_ids()
        attempt_id = self._next_attempt
        self._next_attempt += 1
        return attempt_id

    def event(self, ref: int, run_id: int | None, status: str, at: float, note: str | None) -> int:
        """A history entry only (e.g. a task created on the fly)."""
        event_id = self._event_id()
        self._rows += (EVENT, ref, _n(run_id), status, at, _t(note), event_id, *_PAD[7:])
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
        self._rows += (
            START, ref, run_id, status, at, _t(note), event_id, attempt_id, _t(agent), _t(model),
            _t(interface), *_PAD[11:],
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
        self._rows += (
            ATTEMPT, ref, run_id, 0, at, 0, 0, attempt_id, _t(agent), _t(model), _t(interface),
            *_PAD[11:],
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
        """An attempt ends (StateError at the write if it is not in flight)."""
        self._rows += (
            FINISH, 0, 0, 0, at, 0, 0, attempt_id, 0, 0, 0, status,
            *_ended(error, prompt_tokens, completion_tokens, latency_s, cost, output), 0, 0,
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
        attempt: tuple[Any, ...] | None = None,
    ) -> int:
        """Task reaches ``status``; ``completed`` records a success (hash, sequence number).

        ``attempt``, if given, ends that attempt in the same row: ``(attempt_id, status, error,
        prompt_tokens, completion_tokens, latency_s, cost, output)``, as :meth:`finish_attempt`.
        """
        event_id = self._event_id()
        if attempt is None:
            self._rows += (
                COMPLETE if completed else OTHER, ref, run_id, status, at, _t(note), event_id,
                *_PAD[7:18], _t(error), _t(output),
            )  # fmt: skip
        else:
            self._rows += (
                DONE_COMPLETE if completed else DONE_OTHER, ref, run_id, status, at, _t(note),
                event_id, attempt[0], 0, 0, 0, attempt[1], *_ended(*attempt[2:]), _t(error),
                _t(output),
            )  # fmt: skip
        return event_id

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered rows, in order, inside the batch's explicit transaction. Ids are
        read afresh afterwards, so an operation may insert rows itself in between."""
        if self._solo:
            if self._rows:
                raise StateError("a solo operation buffered transition rows")
            return
        if not self._rows:
            return
        self._begin()
        rows, self._rows = self._rows, []
        self._write(rows)
        self._next_event = self._next_attempt = 0
        self._first_ids = None

    def commit(self) -> None:
        """Make the batch durable: one autocommit statement when possible, else ``COMMIT``."""
        if self._solo:
            self.flush()
            return
        if not self._txn and len(self._rows) <= _MAX_ROWS * _WIDTH:
            rows, self._rows = self._rows, []
            if rows:
                try:
                    self._write(rows)
                except sqlite3.IntegrityError as e:
                    if str(e).startswith("UNIQUE constraint failed"):
                        raise StaleIds from e
                    raise
            return
        if self._rows:
            self._begin()
            next_ids = self.next_ids()
            self.flush()
            if next_ids is not None:  # still known: nothing but our rows was written since
                self._next_event, self._next_attempt = next_ids
        if self._txn:
            self._conn.execute("COMMIT")
            self._txn = False

    def _write(self, flat: list[Any]) -> None:
        total = len(flat) // _WIDTH
        done = 0
        while done < total:
            n = min(total - done, _MAX_ROWS)
            size = min(_statement_rows(n), _MAX_ROWS)
            values = flat[done * _WIDTH : (done + n) * _WIDTH]
            if size > n:
                values += _PAD * (size - n)
            try:
                self._conn.execute(_insert_sql(size), values)
            except sqlite3.IntegrityError as e:
                finishing = [
                    values[i * _WIDTH + _ATTEMPT_ID]
                    for i in range(n)
                    if values[i * _WIDTH] in _FINISHING
                ]
                if "attempt not in flight" in str(e) and len(finishing) == 1:
                    raise StateError(
                        f"attempt {finishing[0]} is not in flight (unknown or finished)"
                    ) from e
                raise
            done += n

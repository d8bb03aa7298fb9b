"""The state store's write operations: each builds a function of the writer's connection that the
writer thread runs (:mod:`.writer`), with plain SQL: a few ``INSERT``/``UPDATE`` statements,
``None`` bound as NULL, row ids read back from ``lastrowid``.

Every text value passes through the :class:`~coditect_core.secrets.Scrubber` here, in the writer
thread. Operations touch only the database, except the *solo* ones (:meth:`Ops.recover`,
:meth:`Ops.begin_run`, :meth:`Ops.finish_run`), which also take or release the run lock and
manage their own transaction; the others run inside the writer's transaction (in a savepoint of
their own) and never commit. The rows of history and attempts point at their task by the task
row's integer id (``task_ref``).

A task's ``held`` flag (a task a person decided: cancelled by hand, which stays cancelled until it
is reset; completed by hand, which runs keep until it is rerun) is written with every status
change of that task: set by a by-hand cancel or completion, cleared by everything else (a start,
any other transition, a restart). A held completion also writes its output in its history entry:
a person's output, which no attempt keeps, survives whatever replaces it later.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import RunLockedError, StateError
from ..orchestration.task import TaskStatus
from ..secrets import Scrubber
from .lock import AnyLock
from .records import AttemptOutcome, AttemptStatus, Recovery, RunInfo, ToolCallRow, project_id

__all__ = [
    "ActiveRun",
    "Ops",
    "coerce_attempt_status",
    "coerce_task_status",
    "ensure_project",
    "mark_interrupted",
]

Op = Callable[[sqlite3.Connection], Any]

_ATTEMPT_ALIASES = {
    "success": AttemptStatus.SUCCEEDED,
    "completed": AttemptStatus.SUCCEEDED,
    "error": AttemptStatus.FAILED,
    "failure": AttemptStatus.FAILED,
    "timeout": AttemptStatus.FAILED,
}
_IN_PROGRESS = TaskStatus.IN_PROGRESS.value
_DIED = "interrupted: its run ended (process died or stopped) first"
_PENDING = TaskStatus.PENDING.value


def coerce_attempt_status(value: Any) -> AttemptStatus:
    """An :class:`AttemptStatus` from itself, its value, or an executor status like ``success``."""
    if type(value) is AttemptStatus:
        return value
    raw = value.value if isinstance(value, Enum) else value
    try:
        return AttemptStatus(raw)
    except ValueError:
        alias = _ATTEMPT_ALIASES.get(str(raw).lower())
        if alias is None:
            allowed = ", ".join(s.value for s in AttemptStatus)
            raise ValueError(f"attempt status {raw!r}: expected one of {allowed}") from None
        return alias


def coerce_task_status(value: Any) -> TaskStatus:
    """A :class:`TaskStatus` from itself or its value; ValueError naming the allowed ones."""
    if type(value) is TaskStatus:
        return value
    try:
        return TaskStatus(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = ", ".join(s.value for s in TaskStatus)
        raise ValueError(f"task status {value!r}: expected one of {allowed}") from None


def ensure_project(conn: sqlite3.Connection, name: str, now: float) -> int:
    found = project_id(conn, name)
    if found is not None:
        return found
    cur = conn.execute("INSERT INTO projects(name, created_at) VALUES (?, ?)", (name, now))
    return int(cur.lastrowid or 0)


_NEW_TASK = "new task"
"""The note of the event that records a task the first time a run sees it."""


def _did_nothing(conn: sqlite3.Connection, run_id: int) -> bool:
    """Whether run ``run_id`` made no attempt and changed no task's status (recording the
    tasks it saw for the first time is no change: a run refused by its budget before its first
    task did nothing). Each table is read newest first (``run_id`` has no index): a run that
    wrote something is found among the last rows; only a run that wrote nothing reads a table
    to its start."""
    changed = (
        conn.execute(
            "SELECT 1 FROM attempts WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
        ).fetchone()
        or conn.execute(
            "SELECT 1 FROM task_events WHERE run_id = ? AND NOT (status = ? AND note IS ?) "
            "ORDER BY id DESC LIMIT 1",
            (run_id, _PENDING, _NEW_TASK),
        ).fetchone()
    )
    return changed is None


def mark_interrupted(conn: sqlite3.Connection, pid: int, now: float, note: str) -> int:
    """Attempts in flight become ``interrupted``, in-progress tasks ``pending`` (with a history
    entry), open runs ``interrupted``. Call only while holding the project's run lock. Returns
    the number of attempts marked."""
    open_runs = "SELECT id FROM runs WHERE project_id = ? AND status = 'running'"
    cur = conn.execute(
        "UPDATE attempts SET status = 'interrupted', finished_at = ?, error = coalesce(error, ?) "
        f"WHERE status = 'running' AND run_id IN ({open_runs})",
        (now, note, pid),
    )
    marked = cur.rowcount
    conn.execute(
        "INSERT INTO task_events(task_ref, run_id, status, at, note) "
        f"SELECT id, (SELECT max(id) FROM ({open_runs})), ?, ?, ? "
        "FROM tasks WHERE project_id = ? AND status = ?",
        (pid, _PENDING, now, note, pid, _IN_PROGRESS),
    )
    conn.execute(
        "UPDATE tasks SET status = ?, updated_at = ?, held = 0 WHERE project_id = ? AND status = ?",
        (_PENDING, now, pid, _IN_PROGRESS),
    )
    conn.execute(
        "UPDATE runs SET status = 'interrupted', finished_at = ? "
        "WHERE project_id = ? AND status = 'running'",
        (now, pid),
    )
    return marked


@dataclass(slots=True)
class ActiveRun:
    """A run begun by this store: its project and its lock."""

    run_id: int
    project: str
    project_id: int
    lock: AnyLock


# -- the statements -----------------------------------------------------------------------------


def _event(
    conn: sqlite3.Connection,
    ref: int,
    run_id: int,
    status: str,
    at: float,
    note: str | None,
    output: str | None = None,
) -> int:
    """A history entry of task row ``ref``; its id."""
    cur = conn.execute(
        "INSERT INTO task_events(task_ref, run_id, status, at, note, output) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (ref, run_id, status, at, note, output),
    )
    return int(cur.lastrowid or 0)


def _new_attempt(
    conn: sqlite3.Connection,
    ref: int,
    run_id: int,
    at: float,
    agent: str | None,
    model: str | None,
    interface: str | None,
) -> int:
    """A ``running`` attempt of task row ``ref``; its id."""
    cur = conn.execute(
        "INSERT INTO attempts(run_id, task_ref, agent, model, interface, started_at, status) "
        "VALUES (?, ?, ?, ?, ?, ?, 'running')",
        (run_id, ref, agent, model, interface, at),
    )
    return int(cur.lastrowid or 0)


def _end_attempt(
    conn: sqlite3.Connection,
    attempt_id: int,
    status: AttemptStatus,
    at: float,
    outcome: AttemptOutcome,
    scrub: Callable[[Any], str | None],
) -> None:
    """Attempt ``attempt_id`` ends; :class:`StateError` if it is not in flight."""
    cur = conn.execute(
        "UPDATE attempts SET status = ?, finished_at = ?, error = ?, prompt_tokens = ?, "
        "completion_tokens = ?, latency_s = ?, cost = ?, output = ?, finish_reason = ?, "
        "cached = ?, turn = ?, tool_calls = ?, value = ? "
        "WHERE id = ? AND status = 'running'",
        (
            status.value, at, scrub(outcome.error), outcome.prompt_tokens,
            outcome.completion_tokens, outcome.latency_s, outcome.cost, scrub(outcome.output),
            scrub(outcome.finish_reason), int(outcome.cached), outcome.turn,
            scrub(outcome.tool_calls), scrub(outcome.value), attempt_id,
        ),
    )  # fmt: skip
    if cur.rowcount != 1:
        raise StateError(f"attempt {attempt_id} is not in flight (unknown or finished)")


class Ops:
    """Builders of write operations over one store's active runs."""

    def __init__(self, scrubber: Scrubber, active: dict[int, ActiveRun]) -> None:
        self._scrub = scrubber
        self._active = active

    def _run(self, run_id: int) -> ActiveRun:
        run = self._active.get(run_id)
        if run is None:
            raise StateError(f"run {run_id} is not an active run of this state store")
        return run

    def _task_ref(self, conn: sqlite3.Connection, run: ActiveRun, task_id: str, now: float) -> int:
        """The row id of ``task_id``, creating a ``pending`` row for a task never defined."""
        task_id = self._scrub.text(task_id) or ""
        row = conn.execute(
            "SELECT id FROM tasks WHERE project_id = ? AND task_id = ?", (run.project_id, task_id)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute(
            "INSERT INTO tasks(project_id, task_id, status, updated_at) VALUES (?, ?, ?, ?)",
            (run.project_id, task_id, _PENDING, now),
        )
        ref = int(cur.lastrowid or 0)
        _event(conn, ref, run.run_id, _PENDING, now, _NEW_TASK)
        return ref

    # -- runs (solo) -------------------------------------------------------------------------

    def recover(self, lock_for: Callable[[str], AnyLock]) -> Op:
        """Mark what dead runs left in flight, for every project whose run lock is free (a
        project with a live run is left alone: its attempts really are in flight)."""

        def op(conn: sqlite3.Connection) -> list[Recovery]:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT p.name FROM runs r JOIN projects p ON p.id = r.project_id "
                    "WHERE r.status = 'running'"
                )
            ]
            found = []
            for name in names:
                lock = lock_for(name)
                try:
                    previous = lock.acquire()
                except RunLockedError:
                    continue
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        pid = project_id(conn, name)
                        marked = (
                            0 if pid is None else mark_interrupted(conn, pid, time.time(), _DIED)
                        )
                        conn.execute("COMMIT")
                    except BaseException:
                        _rollback(conn)
                        raise
                finally:
                    lock.release()
                found.append(Recovery(name, marked, previous.describe() if previous else None))
            return found

        return op

    def begin_run(
        self,
        project: str,
        options: dict[str, Any],
        restart: bool,
        lock: AnyLock,
        pid: int,
        host: str,
        now: float,
    ) -> Op:
        def op(conn: sqlite3.Connection) -> RunInfo:
            previous = lock.acquire()
            try:
                self._scrub.refresh()
                conn.execute("BEGIN IMMEDIATE")
                proj = ensure_project(conn, project, now)
                marked = mark_interrupted(conn, proj, now, _DIED)
                cur = conn.execute(
                    "INSERT INTO runs(project_id, started_at, status, options, pid, host) "
                    "VALUES (?, ?, 'running', ?, ?, ?)",
                    (proj, now, self._scrub.json(options), pid, self._scrub.text(host)),
                )
                run_id = int(cur.lastrowid or 0)
                if restart:
                    conn.execute(
                        "INSERT INTO task_events(task_ref, run_id, status, at, note) "
                        "SELECT id, ?, ?, ?, 'restart: every task runs again' "
                        "FROM tasks WHERE project_id = ?",
                        (run_id, _PENDING, now, proj),
                    )
                    conn.execute(
                        "UPDATE tasks SET status = ?, updated_at = ?, error = NULL, held = 0, "
                        "succeeded_hash = NULL, success_seq = NULL WHERE project_id = ?",
                        (_PENDING, now, proj),
                    )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                lock.release()
                raise
            lock.set_run(run_id)
            self._active[run_id] = ActiveRun(run_id, project, proj, lock)
            return RunInfo(run_id, project, now, marked, previous.describe() if previous else None)

        return op

    def finish_run(
        self, run_id: int, status: str, note: str | None = None, drop_if_empty: bool = False
    ) -> Op:
        def op(conn: sqlite3.Connection) -> bool:
            run = self._run(run_id)
            now = time.time()
            why = note or f"interrupted: run {run_id} ended ({status}) while it was in progress"
            try:
                conn.execute("BEGIN IMMEDIATE")
                mark_interrupted(conn, run.project_id, now, why)
                kept = not (drop_if_empty and _did_nothing(conn, run_id))
                if not kept:  # the tasks it defined stay, as of no run
                    conn.execute("UPDATE task_events SET run_id = NULL WHERE run_id = ?", (run_id,))
                    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                else:
                    conn.execute(
                        "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                        (self._scrub.text(status), now, run_id),
                    )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            del self._active[run_id]
            run.lock.release()
            return kept

        return op

    # -- tasks (in the writer's transaction) -------------------------------------------------

    def define_tasks(self, run_id: int, hashes: dict[str, str]) -> Op:
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            run = self._run(run_id)
            for task_id, digest in hashes.items():
                ref = self._task_ref(conn, run, task_id, now)
                conn.execute(
                    "UPDATE tasks SET content_hash = ? WHERE id = ?",
                    (self._scrub.text(digest), ref),
                )

        return op

    def task_started(
        self,
        run_id: int,
        task_id: str,
        agent: str | None,
        model: str | None,
        interface: str | None,
        note: str | None,
        now: float,
    ) -> Op:
        def op(conn: sqlite3.Connection) -> int:
            run = self._run(run_id)
            s = self._scrub.text
            ref = self._task_ref(conn, run, task_id, now)
            _event(conn, ref, run_id, _IN_PROGRESS, now, s(note))
            conn.execute(
                "UPDATE tasks SET status = ?, updated_at = ?, error = NULL, held = 0, "
                "succeeded_hash = NULL, success_seq = NULL WHERE id = ?",
                (_IN_PROGRESS, now, ref),
            )
            return _new_attempt(conn, ref, run_id, now, s(agent), s(model), s(interface))

        return op

    def attempt_started(
        self,
        run_id: int,
        task_id: str,
        agent: str | None,
        model: str | None,
        interface: str | None,
        now: float,
    ) -> Op:
        def op(conn: sqlite3.Connection) -> int:
            run = self._run(run_id)
            s = self._scrub.text
            ref = self._task_ref(conn, run, task_id, now)
            return _new_attempt(conn, ref, run_id, now, s(agent), s(model), s(interface))

        return op

    def attempt_finished(self, attempt_id: int, outcome: AttemptOutcome, now: float) -> Op:
        status = _final_attempt_status(outcome)

        def op(conn: sqlite3.Connection) -> None:
            _end_attempt(conn, attempt_id, status, now, outcome, self._scrub.text)

        return op

    def check_run(
        self,
        run_id: int,
        task_id: str,
        attempt: int,
        command: str,
        exit_code: int | None,
        timed_out: bool,
        output: str | None,
        duration_s: float | None,
        now: float,
    ) -> Op:
        """One run of a task's acceptance check; its id."""

        def op(conn: sqlite3.Connection) -> int:
            run = self._run(run_id)
            s = self._scrub.text
            ref = self._task_ref(conn, run, task_id, now)
            cur = conn.execute(
                "INSERT INTO check_runs(run_id, task_ref, attempt, command, exit_code, timed_out, "
                "output, duration_s, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, ref, attempt, s(command) or "", exit_code, int(timed_out), s(output),
                 duration_s, now),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

        return op

    def task_change(
        self,
        run_id: int,
        task_id: str,
        branch: str,
        start_commit: str | None,
        commit: str | None,
        files: list[tuple[str, int | None, int | None]],
        diff: str | None,
        now: float,
    ) -> Op:
        """A writing task's committed change (``commit`` None: nothing changed); its id."""
        added = sum(f[1] or 0 for f in files)
        removed = sum(f[2] or 0 for f in files)

        def op(conn: sqlite3.Connection) -> int:
            run = self._run(run_id)
            s = self._scrub.text
            ref = self._task_ref(conn, run, task_id, now)
            cur = conn.execute(
                "INSERT INTO task_changes(run_id, task_ref, branch, start_commit, commit_sha, "
                "files, lines_added, lines_removed, diff, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, ref, s(branch) or "", start_commit, commit,
                 self._scrub.json([list(f) for f in files]), added, removed, s(diff), now),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

        return op

    def change_merged(self, change_id: int, merge_commit: str, now: float) -> Op:
        """Task change ``change_id`` merged into the integration branch as ``merge_commit``."""

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE task_changes SET merge_commit = ?, merged_at = ? WHERE id = ?",
                (merge_commit, now, change_id),
            )
            if cur.rowcount != 1:
                raise StateError(f"task change {change_id} is unknown")

        return op

    def tool_called(self, attempt_id: int, call: ToolCallRow, now: float) -> Op:
        """A tool call of the turn ``attempt_id`` ran: its result (masked), kept once."""

        def op(conn: sqlite3.Connection) -> None:
            s = self._scrub.text
            conn.execute(
                "INSERT OR IGNORE INTO tool_calls(attempt_id, call_id, name, arguments, result, "
                "is_error, duration_s, toolset, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt_id, call.call_id, s(call.name) or "", s(call.arguments) or "",
                    s(call.result) or "", int(call.is_error), call.duration_s, call.toolset, now,
                ),
            )  # fmt: skip

        return op

    def tool_call_decided(
        self, attempt_id: int, marker: str, decision: str, answer: ToolCallRow | None, now: float
    ) -> Op:
        """A person decided on the call waiting for approval (its marker row ``marker`` under
        the turn ``attempt_id``): the marker says ``decision``; ``answer`` (a rejection) is the
        call's result, which the resumed loop sends the model instead of running it."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE tool_calls SET result = ?, at = ? WHERE attempt_id = ? AND call_id = ?",
                (self._scrub.text(decision) or "", now, attempt_id, marker),
            )

        inner = self.tool_called(attempt_id, answer, now) if answer is not None else None

        def both(conn: sqlite3.Connection) -> None:
            op(conn)
            if inner is not None:
                inner(conn)

        return both

    def task_finished(
        self,
        run_id: int,
        task_id: str,
        status: TaskStatus,
        output: str | None,
        error: str | None,
        note: str | None,
        attempt_id: int | None,
        attempt: AttemptOutcome | None,
        held: bool,
        now: float,
    ) -> Op:
        """The task reaches ``status``, ending attempt ``attempt_id`` with ``attempt`` if given;
        ``held`` only with ``cancelled`` or ``completed`` (by hand)."""
        attempt_status = None
        value: str | None = None  # a typed task's value: its successful attempt's
        if attempt is not None:
            if attempt_id is None:
                raise ValueError("task_finished: an attempt outcome needs its attempt_id")
            attempt_status = _final_attempt_status(attempt)
            value = attempt.value
            if output is None:
                output = attempt.output
            if error is None:
                error = attempt.error
        if held and status not in (TaskStatus.CANCELLED, TaskStatus.COMPLETED):
            raise ValueError(
                f"task_finished: only a cancelled or completed task can be held, not {status}"
            )
        kept = held and status is TaskStatus.COMPLETED

        def op(conn: sqlite3.Connection) -> None:
            run = self._run(run_id)
            s = self._scrub.text
            ref = self._task_ref(conn, run, task_id, now)
            if attempt is not None and attempt_id is not None and attempt_status is not None:
                _end_attempt(conn, attempt_id, attempt_status, now, attempt, s)
            kept_output = s(output) if kept else None
            event_id = _event(conn, ref, run_id, status.value, now, s(note), kept_output)
            if status is TaskStatus.COMPLETED:
                conn.execute(
                    "UPDATE tasks SET status = ?, updated_at = ?, output = ?, error = NULL, "
                    "held = ?, succeeded_hash = content_hash, success_seq = ?, value = ? "
                    "WHERE id = ?",
                    (status.value, now, s(output), int(kept), event_id, s(value), ref),
                )
            else:
                conn.execute(
                    "UPDATE tasks SET status = ?, updated_at = ?, output = coalesce(?, output), "
                    "error = ?, held = ?, succeeded_hash = NULL, success_seq = NULL, value = NULL "
                    "WHERE id = ?",
                    (status.value, now, s(output), s(error), int(held), ref),
                )

        return op


def _final_attempt_status(outcome: AttemptOutcome) -> AttemptStatus:
    status = coerce_attempt_status(outcome.status)
    if status is AttemptStatus.RUNNING:
        raise ValueError("an attempt cannot finish as 'running'")
    return status


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

"""What the state store hands back: plain frozen records, and the queries that build them.

Every reader function takes a connection already inside a read transaction (so that several
queries see one consistent snapshot) and returns records; none writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..llm_abstractions.tool_types import ToolCall
from ..orchestration.resume import SuccessRecord
from ..orchestration.tool_loop import APPROVAL_SUFFIX, RecordedLoop, RecordedTurn
from ..tools.base import ToolResult

__all__ = [
    "AttemptOutcome",
    "AttemptRecord",
    "AttemptStatus",
    "CheckRunRecord",
    "ProjectSnapshot",
    "Recovery",
    "RunInfo",
    "RunRecord",
    "TaskChangeRecord",
    "TaskEvent",
    "TaskRecord",
    "ToolCallRow",
    "read_attempts",
    "read_check_runs",
    "read_loop",
    "read_runs",
    "read_snapshot",
    "read_succeeded",
    "read_task_changes",
    "read_task_history",
    "read_tool_calls",
]


class AttemptStatus(StrEnum):
    """How one call of one agent on one task ended (``running`` while in flight)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_HUMAN = "awaiting_human"  # handed to a person (an interactive agent)
    INTERRUPTED = "interrupted"  # the process died (or stopped) while it was in flight


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """The end of an attempt, as the executor measured it. ``cost`` is None when unknown."""

    status: AttemptStatus | str
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cost: float | None = None
    output: str | None = None
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``length``: cut at max_tokens...); None: no reply."""
    cached: bool = False
    """Answered from the call journal: no provider call."""
    turn: int | None = None
    """An agent loop's model turn that asked for tool calls: its number in the loop."""
    tool_calls: str | None = None
    """The calls that turn asked for, as JSON."""
    value: str | None = None
    """A typed task's validated output, as JSON text; None for any other."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run that has begun: returned by :meth:`StateStore.begin_run`."""

    run_id: int
    project: str
    started_at: float
    interrupted_attempts: int = 0
    """Attempts of earlier runs found in flight and marked ``interrupted`` when this run began."""
    took_over_from: str | None = None
    """The dead holder whose run lock this run took over, described, if any."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening a store found left by a dead run of a project, and marked interrupted."""

    project: str
    interrupted_attempts: int
    previous_holder: str | None
    """The dead process that held the project's run lock, described, if it said who it was."""


@dataclass(frozen=True, slots=True)
class CheckRunRecord:
    """One run of a task's acceptance check (``attempt``: the agent's try, from 1)."""

    check_id: int
    task_id: str
    run_id: int | None
    attempt: int
    command: str
    exit_code: int | None
    timed_out: bool
    output: str | None
    duration_s: float | None
    at: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class TaskChangeRecord:
    """A writing task's change: its branch, its commit (None: it changed nothing), its files
    with lines added and removed (None for a binary file), and its merge once made."""

    change_id: int
    task_id: str
    run_id: int | None
    branch: str
    start_commit: str | None
    commit: str | None
    files: tuple[tuple[str, int | None, int | None], ...]
    lines_added: int
    lines_removed: int
    merge_commit: str | None
    merged_at: float | None
    at: float
    diff: str | None = None
    """The diff's text, as kept (long ones cut, a marker in their place)."""

    @property
    def files_changed(self) -> int:
        return len(self.files)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    project: str
    started_at: float
    finished_at: float | None
    status: str
    options: dict[str, Any]
    pid: int | None
    host: str | None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    task_id: str
    status: str
    content_hash: str | None
    output: str | None
    error: str | None
    updated_at: float
    succeeded_hash: str | None
    success_seq: int | None
    held: bool = False
    """A person's decision: cancelled by hand, it stays cancelled, and its dependents blocked,
    until it is reset; completed by hand, runs keep it until it is rerun."""
    value: Any = None
    """A typed task's validated output (JSON data) from its last success; None otherwise."""


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One status transition of a task."""

    event_id: int
    task_id: str
    run_id: int | None
    status: str
    at: float
    note: str | None
    output: str | None = None
    """The output given with a completion by hand (a person's work), else None."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt_id: int
    run_id: int
    task_id: str
    agent: str | None
    model: str | None
    interface: str | None
    started_at: float
    finished_at: float | None
    status: str
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    cost: float | None
    output: str | None
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``length``...); None: no reply, or recorded before
    schema version 3."""
    cached: bool = False
    turn: int | None = None
    """An agent loop's model turn that asked for tool calls: its number in the loop."""
    tool_calls: str | None = None
    """The calls that turn asked for (JSON: ``[{id, name, arguments}]``)."""


@dataclass(frozen=True, slots=True)
class ToolCallRow:
    """One tool call an agent loop ran, under the attempt (the model turn) that asked for it."""

    call_id: str
    name: str
    arguments: str
    result: str
    is_error: bool = False
    duration_s: float | None = None
    toolset: str | None = None
    attempt_id: int = 0
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectSnapshot:
    """One consistent picture of a project (all read in one transaction)."""

    project: str
    runs: list[RunRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    in_flight: list[AttemptRecord] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    @property
    def last_run(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None


_ATTEMPT_COLUMNS = (
    "a.id, a.run_id, t.task_id, a.agent, a.model, a.interface, a.started_at, a.finished_at, "
    "a.status, a.error, a.prompt_tokens, a.completion_tokens, a.latency_s, a.cost, a.output, "
    "a.finish_reason, a.cached, a.turn, a.tool_calls"
)


def project_id(conn: sqlite3.Connection, project: str) -> int | None:
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (project,)).fetchone()
    return None if row is None else int(row[0])


def read_runs(conn: sqlite3.Connection, project: str) -> list[RunRecord]:
    rows = conn.execute(
        "SELECT r.id, r.started_at, r.finished_at, r.status, r.options, r.pid, r.host "
        "FROM runs r JOIN projects p ON p.id = r.project_id WHERE p.name = ? ORDER BY r.id",
        (project,),
    ).fetchall()
    return [RunRecord(r[0], project, r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


def read_tasks(conn: sqlite3.Connection, project: str) -> list[TaskRecord]:
    rows = conn.execute(
        "SELECT t.task_id, t.status, t.content_hash, t.output, t.error, t.updated_at, "
        "t.succeeded_hash, t.success_seq, t.held, t.value "
        "FROM tasks t JOIN projects p ON p.id = t.project_id WHERE p.name = ? ORDER BY t.id",
        (project,),
    ).fetchall()
    return [
        TaskRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], held=bool(r[8]), value=_json(r[9])
        )
        for r in rows
    ]


def _json(text: str | None) -> Any:
    """A stored value's JSON text as data (None stays None)."""
    return None if text is None else json.loads(text)


def read_task_history(conn: sqlite3.Connection, project: str, task_id: str) -> list[TaskEvent]:
    rows = conn.execute(
        "SELECT e.id, t.task_id, e.run_id, e.status, e.at, e.note, e.output FROM task_events e "
        "JOIN tasks t ON t.id = e.task_ref JOIN projects p ON p.id = t.project_id "
        "WHERE p.name = ? AND t.task_id = ? ORDER BY e.id",
        (project, task_id),
    ).fetchall()
    return [TaskEvent(*r) for r in rows]


def _project_rows(
    conn: sqlite3.Connection,
    select: str,
    project: str,
    order_by: str,
    filters: Iterable[tuple[str, object]] = (),
) -> list[Any]:
    """The rows of ``select`` (a ``SELECT ... FROM ...`` that joins the tasks as ``t``) of
    ``project``, narrowed by ``filters`` (``(column, value)``; a ``None`` value: any), ordered
    by ``order_by``."""
    sql = select + " JOIN projects p ON p.id = t.project_id WHERE p.name = ?"
    args: list[Any] = [project]
    for column, value in filters:
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    return conn.execute(f"{sql} ORDER BY {order_by}", args).fetchall()


def read_check_runs(
    conn: sqlite3.Connection, project: str, task_id: str | None = None
) -> list[CheckRunRecord]:
    """Check runs of ``project`` (of one task), oldest first."""
    rows = _project_rows(
        conn,
        "SELECT c.id, t.task_id, c.run_id, c.attempt, c.command, c.exit_code, c.timed_out, "
        "c.output, c.duration_s, c.at FROM check_runs c JOIN tasks t ON t.id = c.task_ref",
        project,
        "c.id",
        [("t.task_id", task_id)],
    )
    return [
        CheckRunRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9])
        for r in rows
    ]


def read_task_changes(
    conn: sqlite3.Connection, project: str, task_id: str | None = None
) -> list[TaskChangeRecord]:
    """Task changes of ``project`` (of one task), oldest first."""
    rows = _project_rows(
        conn,
        "SELECT c.id, t.task_id, c.run_id, c.branch, c.start_commit, c.commit_sha, c.files, "
        "c.lines_added, c.lines_removed, c.merge_commit, c.merged_at, c.at, c.diff "
        "FROM task_changes c JOIN tasks t ON t.id = c.task_ref",
        project,
        "c.id",
        [("t.task_id", task_id)],
    )
    return [
        TaskChangeRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            tuple((f[0], f[1], f[2]) for f in json.loads(r[6])),
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
        )
        for r in rows
    ]


def read_attempts(
    conn: sqlite3.Connection,
    project: str,
    *,
    task_id: str | None = None,
    run_id: int | None = None,
    status: str | None = None,
) -> list[AttemptRecord]:
    rows = _project_rows(
        conn,
        f"SELECT {_ATTEMPT_COLUMNS} FROM attempts a JOIN tasks t ON t.id = a.task_ref",
        project,
        "a.id",
        [("t.task_id", task_id), ("a.run_id", run_id), ("a.status", status)],
    )
    return [_attempt(r) for r in rows]


def _attempt(r: Any) -> AttemptRecord:
    *head, cached, turn, calls = r
    record = AttemptRecord(*head)
    return replace(record, cached=bool(cached), turn=turn, tool_calls=calls)


def read_tool_calls(
    conn: sqlite3.Connection, project: str, *, task_id: str | None = None
) -> list[ToolCallRow]:
    """The tool calls of ``project``'s agent loops (of one task), in the order they ran."""
    rows = _project_rows(
        conn,
        "SELECT c.call_id, c.name, c.arguments, c.result, c.is_error, c.duration_s, c.toolset, "
        "c.attempt_id, t.task_id FROM tool_calls c JOIN attempts a ON a.id = c.attempt_id "
        "JOIN tasks t ON t.id = a.task_ref",
        project,
        "c.id",
        [("t.task_id", task_id)],
    )
    return [ToolCallRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8]) for r in rows]


_UNFINISHED = frozenset({"running", "interrupted", "cancelled", "awaiting_human"})
"""A loop whose last attempt ended so goes on (``awaiting_human``: a call waited for approval)."""


def read_loop(conn: sqlite3.Connection, project: str, task_id: str) -> RecordedLoop | None:
    """The agent loop of ``task_id`` that a killed run left unfinished, to resume: its recorded
    turns 1..n (the calls each asked for, and the results recorded); ``None`` when its last
    attempt finished (the loop ended: a new run starts afresh) or no turn was recorded."""
    attempts = read_attempts(conn, project, task_id=task_id)
    if not attempts or attempts[-1].status not in _UNFINISHED:
        return None
    span: list[AttemptRecord] = []  # this execution's attempts, back over killed runs
    for attempt in reversed(attempts):
        if span and attempt.run_id != span[-1].run_id and attempt.status not in _UNFINISHED:
            break  # that run's execution of the task ended: its loop is not this one
        span.append(attempt)
    chain: list[AttemptRecord] = []
    for attempt in span:
        if attempt.turn is None or attempt.status != "succeeded":
            continue  # a retry, or the turn in flight at a kill
        expected = chain[-1].turn - 1 if chain and chain[-1].turn else None
        if expected is not None and attempt.turn != expected:
            continue  # a later loop's turn of the same number (resumed), or an older loop
        chain.append(attempt)
        if attempt.turn == 1:
            break
    if not chain or chain[-1].turn != 1:
        return None
    calls = read_tool_calls(conn, project, task_id=task_id)
    by_attempt: dict[int, list[ToolCallRow]] = {}
    for row in calls:
        by_attempt.setdefault(row.attempt_id, []).append(row)
    turns = []
    for attempt in reversed(chain):
        asked = [ToolCall.from_dict(c) for c in json.loads(attempt.tool_calls or "[]")]
        rows = by_attempt.get(attempt.attempt_id, ())
        results = {
            row.call_id: ToolResult(row.result, is_error=row.is_error)
            for row in rows
            if not row.call_id.endswith(APPROVAL_SUFFIX)
        }
        approvals = {
            row.call_id.removesuffix(APPROVAL_SUFFIX): row.result
            for row in rows
            if row.call_id.endswith(APPROVAL_SUFFIX)
        }
        turns.append(RecordedTurn(attempt.output or "", asked, results, approvals))
    return RecordedLoop(turns, last_attempt=chain[0].attempt_id)


def read_succeeded(conn: sqlite3.Connection, project: str) -> dict[str, SuccessRecord]:
    rows = conn.execute(
        "SELECT t.task_id, t.succeeded_hash, t.success_seq, t.output, t.value FROM tasks t "
        "JOIN projects p ON p.id = t.project_id WHERE p.name = ? AND t.status = 'completed'",
        (project,),
    ).fetchall()
    return {r[0]: SuccessRecord(r[1], int(r[2] or 0), r[3], _json(r[4])) for r in rows}


def read_snapshot(conn: sqlite3.Connection, project: str) -> ProjectSnapshot:
    return ProjectSnapshot(
        project,
        runs=read_runs(conn, project),
        tasks=read_tasks(conn, project),
        in_flight=read_attempts(conn, project, status=AttemptStatus.RUNNING.value),
    )

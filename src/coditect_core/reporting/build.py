"""The one read of a project's state: a store's records, and the tasks as the project file
defines them -> a :class:`~.model.ReportData` (its rows).

Everything is read from the store in one read transaction (:func:`read_store`: one consistent
picture, even while a run is writing); :func:`report_from` turns those records into rows, and is
the only place that does. The task definitions (titles, dependencies, prompts) come from the
caller, who read the project file; the store only keeps ids, statuses, outputs and attempts.
Limited to one run (``run_id``), a report shows that run's attempts and every task's status as
it was when that run ended.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import StateError
from ..llm_abstractions.pricing import price_data_version
from ..orchestration.prompts import task_prompt
from ..store.records import (
    AttemptRecord,
    RunRecord,
    TaskEvent,
    TaskRecord,
    ToolCallRow,
    read_attempts,
    read_runs,
    read_tasks,
    read_tool_calls,
)
from .model import AgentRow, AttemptRow, ReportData, RunRow, TaskRow, tally

if TYPE_CHECKING:
    from ..orchestration.task import AgentTask
    from ..store import StateStore

__all__ = ["StoreContents", "dependency_levels", "read_report", "read_store", "report_from"]

_NOT_RUN = "pending"


@dataclass(frozen=True, slots=True)
class StoreContents:
    """What the rows are made of, read from the store in one transaction."""

    runs: list[RunRecord]
    tasks: list[TaskRecord]
    attempts: list[AttemptRecord]
    events: list[TaskEvent]
    """Every status change, oldest first."""
    tool_calls: list[ToolCallRow] = field(default_factory=list)
    """Every tool call of an agent loop, in the order they ran."""


def _read_events(conn: sqlite3.Connection, project: str) -> list[TaskEvent]:
    # One pass over the project's events (the store's task_history() reads one task at a time).
    rows = conn.execute(
        "SELECT e.id, t.task_id, e.run_id, e.status, e.at, e.note, e.output FROM task_events e "
        "JOIN tasks t ON t.id = e.task_ref JOIN projects p ON p.id = t.project_id "
        "WHERE p.name = ? ORDER BY e.id",
        (project,),
    ).fetchall()
    return [TaskEvent(*r) for r in rows]


def read_store(store: StateStore, project: str) -> StoreContents:
    """Runs, tasks, attempts and status changes of ``project``, from one read transaction."""

    def read(conn: sqlite3.Connection) -> StoreContents:
        return StoreContents(
            runs=read_runs(conn, project),
            tasks=read_tasks(conn, project),
            attempts=read_attempts(conn, project),
            events=_read_events(conn, project),
            tool_calls=read_tool_calls(conn, project),
        )

    return store.read(read)


def dependency_levels(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Task id -> its depth: 0 for a task with no (known) dependency, else one more than its
    deepest dependency. Unknown dependencies are ignored; a cycle is cut where it closes."""
    levels: dict[str, int] = {}
    on_path: set[str] = set()  # expanded, not finished: the current chain of dependents
    for root in graph:
        stack = [root]
        while stack:
            tid = stack[-1]
            if tid in levels:
                stack.pop()
                continue
            on_path.add(tid)
            deps = [d for d in graph[tid] if d in graph and d not in on_path]
            todo = [d for d in deps if d not in levels]
            if todo:
                stack.extend(todo)
                continue
            levels[tid] = 1 + max((levels[d] for d in deps), default=-1)
            on_path.discard(tid)
            stack.pop()
    return levels


def _classify(attempts: list[AttemptRecord]) -> list[tuple[int, str]]:
    """``(number, kind)`` for a task's attempts, oldest first (see :class:`AttemptRow`).

    An attempt is a ``retry`` or a ``fallback`` only when an earlier attempt of the task in the
    same run failed (then ``fallback`` if another agent made it); the task's first attempt in a
    run is ``first``, also when an earlier run tried it (a ``--restart``, or a resumed run)."""
    out = []
    previous: AttemptRecord | None = None
    for n, a in enumerate(attempts, 1):
        if previous is not None and previous.turn is not None and previous.status == "succeeded":
            kind = "turn"  # the next model turn of an agent loop
        elif previous is None or previous.run_id != a.run_id or previous.status == "succeeded":
            kind = "first"
        elif previous.agent != a.agent:
            kind = "fallback"
        else:
            kind = "retry"
        out.append((n, kind))
        previous = a
    return out


def _attempt_rows(
    attempts: list[AttemptRecord], now: float, calls: Mapping[int, list[ToolCallRow]]
) -> list[AttemptRow]:
    rows = []
    for (number, kind), a in zip(_classify(attempts), attempts, strict=True):
        if a.finished_at is not None:
            duration = max(a.finished_at - a.started_at, 0.0)
        elif a.status == "running":
            duration = max(now - a.started_at, 0.0)
        else:
            duration = a.latency_s or 0.0
        rows.append(
            AttemptRow(
                attempt_id=a.attempt_id,
                run_id=a.run_id,
                task_id=a.task_id,
                number=number,
                kind=kind,
                agent=a.agent,
                model=a.model,
                interface=a.interface,
                started_at=a.started_at,
                finished_at=a.finished_at,
                duration_s=duration,
                status=a.status,
                error=a.error,
                prompt_tokens=a.prompt_tokens,
                completion_tokens=a.completion_tokens,
                latency_s=a.latency_s,
                cost_usd=a.cost,
                output=a.output,
                finish_reason=a.finish_reason,
                cached=a.cached,
                turn=a.turn,
                tool_calls=json.loads(a.tool_calls) if a.tool_calls else [],
                tool_runs=list(calls.get(a.attempt_id, ())),
            )
        )
    return rows


def _run_rows(
    runs: list[RunRecord], attempts: list[AttemptRow], events: Iterable[TaskEvent], now: float
) -> list[RunRow]:
    by_run: dict[int, list[AttemptRow]] = {}
    for a in attempts:
        by_run.setdefault(a.run_id, []).append(a)
    last_in_run: dict[int, dict[str, str]] = {}
    for e in events:
        if e.run_id is not None:
            last_in_run.setdefault(e.run_id, {})[e.task_id] = e.status
    rows = []
    for r in runs:
        mine = by_run.get(r.run_id, [])
        end = r.finished_at
        if end is None:
            ends = [a.finished_at or now for a in mine]
            end = max(ends, default=now) if r.status == "running" else max(ends, default=None)
        counts: dict[str, int] = {}
        for status in last_in_run.get(r.run_id, {}).values():
            counts[status] = counts.get(status, 0) + 1
        rows.append(
            RunRow(
                run_id=r.run_id,
                started_at=r.started_at,
                finished_at=r.finished_at,
                status=r.status,
                wall_s=max((end or r.started_at) - r.started_at, 0.0),
                figures=tally(mine),
                task_counts=dict(sorted(counts.items())),
                options=r.options,
                attempts=mine,
                pid=r.pid,
                host=r.host,
            )
        )
    return rows


def _agent_rows(attempts: list[AttemptRow]) -> list[AgentRow]:
    groups: dict[str, list[AttemptRow]] = {}
    for a in attempts:
        groups.setdefault(a.agent or "?", []).append(a)
    return [
        AgentRow(
            agent=name,
            models=list(dict.fromkeys(a.model for a in rows if a.model)),
            tasks=len({a.task_id for a in rows}),
            figures=tally(rows),
            attempts=rows,
        )
        for name, rows in sorted(groups.items())
    ]


def report_from(
    contents: StoreContents,
    project: str,
    *,
    tasks: Sequence[AgentTask] | None = None,
    run_id: int | None = None,
    now: float | None = None,
) -> ReportData:
    """The rows of ``project`` made of what the store holds on it (:func:`read_store`).

    ``tasks`` are the project's tasks as defined now (titles, dependencies, prompts); without
    them the rows hold only what the store keeps (ids, statuses, outputs, attempts).
    ``run_id`` limits them to one run; :class:`StateError` if the project has no such run.
    ``now`` (default: the time now) is the moment they show: attempts and runs still going
    last until then.
    """
    now = time.time() if now is None else now
    runs = contents.runs
    if run_id is not None:
        runs = [r for r in runs if r.run_id == run_id]
        if not runs:
            known = ", ".join(str(r.run_id) for r in contents.runs) or "none yet"
            raise StateError(f"project {project!r} has no run {run_id} (runs: {known})")
    events = [
        e for e in contents.events if run_id is None or e.run_id is None or e.run_id <= run_id
    ]
    by_task: dict[str, list[AttemptRecord]] = {}
    for a in contents.attempts:  # all runs: a retry in run 2 is a retry even in its report
        by_task.setdefault(a.task_id, []).append(a)
    calls: dict[int, list[ToolCallRow]] = {}
    for call in contents.tool_calls:
        calls.setdefault(call.attempt_id, []).append(call)
    attempt_rows = {
        tid: [a for a in _attempt_rows(rows, now, calls) if run_id is None or a.run_id == run_id]
        for tid, rows in by_task.items()
    }

    stored = {t.task_id: t for t in contents.tasks}
    status_now: dict[str, str] = {}
    history: dict[str, list[TaskEvent]] = {}
    for e in events:
        status_now[e.task_id] = e.status
        if run_id is None or e.run_id == run_id:
            history.setdefault(e.task_id, []).append(e)
    if run_id is None:
        status_now.update({tid: t.status for tid, t in stored.items()})

    defined: dict[str, AgentTask] = {t.task_id: t for t in tasks or ()}
    order = list(defined) + [tid for tid in stored if tid not in defined]
    graph = {tid: list(defined[tid].dependencies) if tid in defined else [] for tid in order}
    levels = dependency_levels(graph)

    rows: list[TaskRow] = []
    for tid in order:
        task = defined.get(tid)
        record = stored.get(tid)
        attempts = attempt_rows.get(tid, [])
        status = status_now.get(tid, _NOT_RUN)
        final = attempts[-1] if attempts else None
        value = None
        if run_id is None and record is not None:
            output, error, value = record.output, record.error, record.value
        else:
            output = final.output if final and final.status == "succeeded" else None
            error = final.error if final else None
            if record is not None and output is not None and output == record.output:
                value = record.value  # (this run's success is the task's last)
        if error is None and status in ("blocked", "cancelled") and history.get(tid):
            error = history[tid][-1].note or None
        if error is not None and error.startswith(f"{status}: "):  # shown beside its status
            error = error[len(status) + 2 :]
        rows.append(
            TaskRow(
                task_id=tid,
                title=task.title if task else "",
                description=task.description if task else "",
                agent=task.agent if task else (final.agent if final else None),
                priority=task.priority.value if task else None,
                dependencies=graph[tid],
                level=levels.get(tid, 0),
                status=status,
                defined=task is not None,
                attempts=attempts,
                figures=tally(attempts),
                output=output,
                error=error,
                prompt=task_prompt(task) if task else None,
                history=history.get(tid, []),
                updated_at=record.updated_at if record is not None else None,
                value=value,
            )
        )
    rows.sort(key=lambda r: r.level)  # stable: file order within a level
    all_attempts = [a for r in rows for a in r.attempts]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ReportData(
        project=project,
        generated_at=now,
        run_id=run_id,
        prices=price_data_version(),
        runs=_run_rows(runs, all_attempts, events, now),
        tasks=rows,
        agents=_agent_rows(all_attempts),
        totals=tally(all_attempts),
        status_counts=dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    )


def read_report(
    store: StateStore,
    project: str,
    *,
    tasks: Sequence[AgentTask] | None = None,
    run_id: int | None = None,
    now: float | None = None,
) -> ReportData:
    """The rows of ``project`` from ``store``, read in one transaction (see :func:`report_from`
    for the arguments)."""
    return report_from(read_store(store, project), project, tasks=tasks, run_id=run_id, now=now)

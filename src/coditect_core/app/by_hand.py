"""Tasks finished by hand: record that a person completed, failed, cancelled, reset or asked to
rerun a task.

``coditect task complete|fail|cancel|reset|rerun`` write here, durably, so that the next ``run``
respects it. Each is recorded as a short run of its own (:meth:`StateStore.begin_run` ...
:meth:`~StateStore.finish_run`, status ``by_hand``), so it takes the project's run lock like any
run: it is refused while another live process runs the project, and it shows in the history.

What the next ``coditect run`` does with the task:

* ``complete``: the store records a success (with the task's current content hash and the given
  output), *kept* (the store's ``held`` flag on a completed task): runs skip it and pass its
  output to its dependents, whatever happens upstream (an upstream task still pending runs, and
  the kept task does not run after it), until ``rerun`` (or a restart) releases it. The output
  is also kept in the task's history, so a later rerun replaces it with a trace. A task already
  completed may be completed again (to replace its output); its dependents then run again, as
  after any new success upstream. Completing a task that has an output with neither an output
  nor a note would replace its output with nothing: refused (:class:`WorkAtRiskError`) unless
  ``force``.
* ``fail``: the task failed; the run tries it again (``fail`` also forces a completed task to
  run again).
* ``cancel``: the task is *held* (the store's ``held`` flag): it stays cancelled and its
  dependents are blocked, run after run, until it is reset (``reset``), completed or failed by
  hand, or the project is restarted (``coditect run --restart``). Any of those clears the flag.
* ``reset``: back to ``pending``: the run runs it (the way to undo ``cancel``).
* ``rerun``: back to ``pending`` like ``reset``, and with ``with_dependents`` every task that
  depends on it too (releasing those kept or held by hand): the next run runs them. (Without it,
  the dependents run anyway once the task ran again, except those kept by hand.)
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ProjectFileError, StateError, WorkAtRiskError
from ..orchestration.scheduler import descendants
from ..orchestration.task import TaskStatus
from ..orchestration.tool_loop import APPROVAL_SUFFIX, APPROVED, WAITING_APPROVAL
from ..project import read_project_file
from ..store import StateStore, state_path_for
from ..store.records import TaskRecord, ToolCallRow
from .view import CANCELLED_BY_HAND, definition_hashes, resolve_offline

__all__ = [
    "RUN_STATUS",
    "ByHand",
    "ByHandResult",
    "DecisionResult",
    "record_by_hand",
    "record_decision",
]

RUN_STATUS = "by_hand"
"""The status of the short run that records a change made by hand."""


class ByHand(StrEnum):
    """What a person did to a task."""

    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RESET = "reset"
    RERUN = "rerun"


_STATUS = {
    ByHand.COMPLETE: TaskStatus.COMPLETED,
    ByHand.FAIL: TaskStatus.FAILED,
    ByHand.CANCEL: TaskStatus.CANCELLED,
    ByHand.RESET: TaskStatus.PENDING,
    ByHand.RERUN: TaskStatus.PENDING,
}
_HELD = (ByHand.COMPLETE, ByHand.CANCEL)  # a person's decision, which runs keep


@dataclass(frozen=True)
class ByHandResult:
    """What was recorded."""

    project: str
    task_id: str
    action: ByHand
    previous_status: str
    status: str
    run_id: int
    state_path: Path
    dependents: tuple[str, ...] = ()
    """``rerun`` with its dependents: those also set to run again."""
    waiting_on: tuple[str, ...] = ()
    """``complete``: the tasks it depends on that have not completed (they still run; it not)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "project": self.project,
            "task_id": self.task_id,
            "action": self.action.value,
            "previous_status": self.previous_status,
            "status": self.status,
            "run_id": self.run_id,
            "state": str(self.state_path),
        }
        if self.action is ByHand.RERUN:
            out["dependents"] = list(self.dependents)
        if self.waiting_on:
            out["waiting_on"] = list(self.waiting_on)
        return out


def _texts(action: ByHand, output: str | None, note: str | None) -> tuple[str | None, ...]:
    """``(output, error, note)`` of the transition."""
    if action is ByHand.COMPLETE:
        text = f"completed by hand: {note}" if note else "completed by hand"
        return (output if output is not None else note, None, text)
    if action is ByHand.FAIL:
        error = f"failed by hand: {note}" if note else "failed by hand"
        return (None, error, error)
    if action is ByHand.CANCEL:
        error = f"{CANCELLED_BY_HAND}: {note}" if note else CANCELLED_BY_HAND
        return (None, error, error)
    what = "rerun" if action is ByHand.RERUN else "reset"
    return (None, None, f"{what} by hand: {note}" if note else f"{what} by hand")


async def record_by_hand(
    path: str | os.PathLike[str],
    task_id: str,
    action: ByHand | str,
    *,
    output: str | None = None,
    note: str | None = None,
    state: str | os.PathLike[str] | None = None,
    force: bool = False,
    with_dependents: bool = False,
) -> ByHandResult:
    """Record ``action`` on ``task_id`` of the project file at ``path``.

    ``output`` is the result of a completed task (default: ``note``); ``note`` goes in the
    task's history (and in the error of a failed or cancelled one). ``force`` lets ``complete``
    replace an output with nothing; ``with_dependents`` makes ``rerun`` take every task that
    depends on ``task_id`` too. Needs no API key.

    Raises :class:`ProjectFileError` for a bad file or an unknown task (nothing written),
    :class:`WorkAtRiskError` for a completion that would lose an output (nothing written),
    :class:`RunLockedError` while another live process runs the project, :class:`StateError`
    for an unusable store.
    """
    action = ByHand(action)
    project_file = read_project_file(path)
    ids = project_file.task_ids
    if task_id not in ids:
        close = difflib.get_close_matches(task_id, ids, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProjectFileError(f"task {task_id!r} is not in the file{hint}", path=project_file.path)
    project = resolve_offline(project_file)
    hashes = definition_hashes(project)
    graph = project.graph()
    dependents: tuple[str, ...] = ()
    if action is ByHand.RERUN and with_dependents:
        below = descendants(graph, [task_id])
        dependents = tuple(t for t in ids if t in below)
    name = project_file.name
    store = StateStore.open(state_path_for(path, state))
    try:
        records = {r.task_id: r for r in store.snapshot(name).tasks}
        if action is ByHand.COMPLETE and output is None and note is None and not force:
            _refuse_losing_output(task_id, records.get(task_id))
        info = await store.begin_run(name, options={"by_hand": action.value, "task": task_id})
        ended = "error"
        try:
            await store.define_tasks(info.run_id, hashes)
            records = {r.task_id: r for r in store.snapshot(name).tasks}
            row = records.get(task_id)
            previous = row.status if row is not None else TaskStatus.PENDING.value
            status = _STATUS[action]
            text, error, why = _texts(action, output, note)
            await store.task_finished(
                info.run_id,
                task_id,
                status,
                output=text,
                error=error,
                note=why,
                held=action in _HELD,
            )
            why_dependent = f"rerun by hand: depends on {task_id}"
            for tid in dependents:
                await store.set_task_status(
                    info.run_id, tid, TaskStatus.PENDING, note=why_dependent
                )
            ended = RUN_STATUS
        finally:
            await store.finish_run(info.run_id, ended)
    finally:
        await store.aclose()
    waiting: tuple[str, ...] = ()
    if action is ByHand.COMPLETE:
        done = TaskStatus.COMPLETED.value
        upstream = set(project_file.with_dependencies([task_id])) - {task_id}
        waiting = tuple(
            t for t in ids if t in upstream and (t not in records or records[t].status != done)
        )
    return ByHandResult(
        name,
        task_id,
        action,
        previous,
        status.value,
        info.run_id,
        store.path,
        dependents=dependents,
        waiting_on=waiting,
    )


def _refuse_losing_output(task_id: str, row: TaskRecord | None) -> None:
    """A completion with no output and no note would replace ``row``'s output with nothing."""
    if row is None or row.output is None:
        return
    raise WorkAtRiskError(
        f"task {task_id!r} already has an output ({len(row.output)} characters, "
        f"{row.status}); completing it with neither --output nor --note would replace it with "
        f"nothing and run its dependents again. Give --output FILE or --note TEXT, or --force "
        f"to replace it anyway"
    )


@dataclass(frozen=True)
class DecisionResult:
    """A person's decision on the tool calls a task waited on (``task approve|reject``)."""

    project: str
    task_id: str
    approved: bool
    calls: tuple[str, ...]
    """The calls decided, each ``name(arguments)``."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "task_id": self.task_id,
            "decision": "approved" if self.approved else "rejected",
            "calls": list(self.calls),
            **({"note": self.note} if self.note else {}),
        }


async def record_decision(
    path: str | os.PathLike[str],
    task_id: str,
    *,
    approved: bool,
    note: str | None = None,
    state: str | os.PathLike[str] | None = None,
) -> DecisionResult:
    """Approve or reject the tool calls ``task_id``'s agent loop waits on (its agent's
    ``approve:``). The next ``coditect run`` resumes the loop: an approved call runs, a rejected
    one is answered with an error result carrying ``note`` (the model sees it).

    Raises :class:`ProjectFileError` for a bad file or an unknown task, :class:`StateError` when
    the task waits on no tool call (nothing written).
    """
    project_file = read_project_file(path)
    ids = project_file.task_ids
    if task_id not in ids:
        close = difflib.get_close_matches(task_id, ids, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProjectFileError(f"task {task_id!r} is not in the file{hint}", path=project_file.path)
    name = project_file.name
    store = StateStore.open(state_path_for(path, state))
    try:
        records = {r.task_id: r for r in store.snapshot(name).tasks}
        row = records.get(task_id)
        waiting = [
            call
            for call in store.tool_calls(name, task_id=task_id)
            if call.call_id.endswith(APPROVAL_SUFFIX) and call.result == WAITING_APPROVAL
        ]
        if row is None or row.status != TaskStatus.AWAITING_HUMAN.value or not waiting:
            status = row.status if row is not None else "never run"
            raise StateError(f"task {task_id!r} waits on no tool call to approve ({status})")
        shown: list[str] = []
        decision = "approve" if approved else "reject"
        info = await store.begin_run(name, options={"by_hand": decision, "task": task_id})
        ended = "error"
        try:
            await _decide(store, waiting, approved, note, shown)
            what = "approved" if approved else "rejected"
            why = f"{what} by hand: {', '.join(shown)}" + (f" ({note})" if note else "")
            await store.set_task_status(info.run_id, task_id, TaskStatus.AWAITING_HUMAN, note=why)
            ended = RUN_STATUS
        finally:
            await store.finish_run(info.run_id, ended)
    finally:
        await store.aclose()
    return DecisionResult(name, task_id, approved, tuple(shown), note)


async def _decide(
    store: StateStore,
    waiting: list[ToolCallRow],
    approved: bool,
    note: str | None,
    shown: list[str],
) -> None:
    """Record the decision on each waiting call (``shown``: each as ``name(arguments)``)."""
    for call in waiting:
        call_id = call.call_id.removesuffix(APPROVAL_SUFFIX)
        shown.append(f"{call.name}({call.arguments})")
        if approved:
            await store.tool_call_decided(call.attempt_id, call.call_id, APPROVED)
            continue
        text = f"rejected by a person: {note}" if note else "rejected by a person"
        answer = ToolCallRow(call_id, call.name, call.arguments, text, is_error=True, toolset=None)
        await store.tool_call_decided(call.attempt_id, call.call_id, text, answer)

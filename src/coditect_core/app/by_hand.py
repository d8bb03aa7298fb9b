"""Tasks finished by hand: record that a person completed, failed, cancelled or reset a task.

``coditect task complete|fail|cancel|reset`` write here, durably, so that the next ``run``
respects it. Each is recorded as a short run of its own (:meth:`StateStore.begin_run` ...
:meth:`~StateStore.finish_run`, status ``by_hand``), so it takes the project's run lock like any
run: it is refused while another live process runs the project, and it shows in the history.

What the next ``coditect run`` does with the task:

* ``complete``: the store records a success (with the task's current content hash and the given
  output): the task is skipped, and its output is passed to its dependents as context. A task
  already completed may be completed again (to replace its output); its dependents then run
  again, as after any new success upstream.
* ``fail``: the task failed; the run tries it again (``fail`` also forces a completed task to
  run again).
* ``cancel``: the task is *held* (the store's ``held`` flag): it stays cancelled and its
  dependents are blocked, run after run, until it is reset (``reset``), completed or failed by
  hand, or the project is restarted (``coditect run --restart``). Any of those clears the flag.
* ``reset``: back to ``pending``: the run runs it (the way to undo ``cancel``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ProjectFileError
from ..orchestration.task import TaskStatus
from ..project import read_project_file
from ..store import StateStore, state_path_for
from .view import CANCELLED_BY_HAND, definition_hashes, resolve_offline

__all__ = ["RUN_STATUS", "ByHand", "ByHandResult", "record_by_hand"]

RUN_STATUS = "by_hand"
"""The status of the short run that records a change made by hand."""


class ByHand(StrEnum):
    """What a person did to a task."""

    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RESET = "reset"


_STATUS = {
    ByHand.COMPLETE: TaskStatus.COMPLETED,
    ByHand.FAIL: TaskStatus.FAILED,
    ByHand.CANCEL: TaskStatus.CANCELLED,
    ByHand.RESET: TaskStatus.PENDING,
}


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "task_id": self.task_id,
            "action": self.action.value,
            "previous_status": self.previous_status,
            "status": self.status,
            "run_id": self.run_id,
            "state": str(self.state_path),
        }


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
    return (None, None, f"reset by hand: {note}" if note else "reset by hand")


async def record_by_hand(
    path: str | os.PathLike[str],
    task_id: str,
    action: ByHand | str,
    *,
    output: str | None = None,
    note: str | None = None,
    state: str | os.PathLike[str] | None = None,
) -> ByHandResult:
    """Record ``action`` on ``task_id`` of the project file at ``path``.

    ``output`` is the result of a completed task (default: ``note``); ``note`` goes in the
    task's history (and in the error of a failed or cancelled one). Needs no API key.

    Raises :class:`ProjectFileError` for a bad file or an unknown task (nothing written),
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
    hashes = definition_hashes(resolve_offline(project_file))
    name = project_file.name
    store = StateStore.open(state_path_for(path, state))
    try:
        info = await store.begin_run(name, options={"by_hand": action.value, "task": task_id})
        ended = "error"
        try:
            await store.define_tasks(info.run_id, hashes)
            previous = {r.task_id: r.status for r in store.snapshot(name).tasks}.get(
                task_id, TaskStatus.PENDING.value
            )
            status = _STATUS[action]
            text, error, why = _texts(action, output, note)
            await store.task_finished(
                info.run_id,
                task_id,
                status,
                output=text,
                error=error,
                note=why,
                held=action is ByHand.CANCEL,
            )
            ended = RUN_STATUS
        finally:
            await store.finish_run(info.run_id, ended)
    finally:
        await store.aclose()
    return ByHandResult(name, task_id, action, previous, status.value, info.run_id, store.path)

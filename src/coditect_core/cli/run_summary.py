"""The end of ``coditect run``: what happened, and the exact commands that go on from there.

After the run's table (``cli/run.py``), :func:`print_next_steps` says, for the tasks that did not
simply succeed (:mod:`coditect_core.app.next_steps`): each failed task with its error on one
line, "N tasks blocked by X" once per group, each task waiting on a person with the command that
finishes it and the command that shows its prompt, a budget stop with the command that goes on,
and where to look further (``coditect show``); the truncated replies are named under the table.
:func:`next_steps_json` is the same facts for ``--json``, the truncated replies included.
Every command is built from the command line as typed, without ``--restart`` (which would run
every task again): :func:`resume_command`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .output import Shown, console

if TYPE_CHECKING:
    from ..app.next_steps import NextSteps

__all__ = [
    "ERROR_WIDTH",
    "complete_command",
    "next_steps_json",
    "one_line",
    "print_next_steps",
    "prompt_command",
    "resume_command",
]

ERROR_WIDTH = 160
"""An error is shown on one line of at most this many characters (``coditect show``: all)."""

_RESTART = ("--restart", "--no-restart")


def _command(words: Sequence[str]) -> str:
    return shlex.join(["coditect", *words])


def resume_command(argv: Sequence[str] | None = None) -> str:
    """The command that resumes this run: ``coditect`` and the arguments as typed (default:
    this process's), without ``--restart`` (which would run every finished task again)."""
    words = list(sys.argv[1:] if argv is None else argv)
    return _command([w for w in words if w not in _RESTART])


def complete_command(project: str, task_id: str) -> str:
    """The command that records a person's work on ``task_id``."""
    return _command(["task", "complete", project, task_id, "-o", "FILE"])


def prompt_command(project: str, task_id: str) -> str:
    """The command that prints the prompt a person works from (``show`` prints it)."""
    return _command(["show", project, task_id])


def one_line(text: str, width: int = ERROR_WIDTH) -> str:
    """``text`` on one line (whitespace runs made one space), cut at ``width`` with an ellipsis;
    not yet masked nor made inert (:class:`Shown` does both)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _ids(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def next_steps_json(
    steps: NextSteps, project: str, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """The facts of :func:`print_next_steps` as data: the tasks by kind, and the commands."""
    data = steps.to_dict()
    for row in data["awaiting_human"]:
        if row.get("pending_approval"):
            row["approve_command"] = _command(["task", "approve", project, row["task_id"]])
            row["reject_command"] = _command(
                ["task", "reject", project, row["task_id"], "--note", "TEXT"]
            )
        row["complete_command"] = complete_command(project, row["task_id"])
        row["prompt_command"] = prompt_command(project, row["task_id"])
    data["resume_command"] = resume_command(argv)
    # A budget is per run: the resume command goes on with a budget of its own.
    data["budget_command"] = data["resume_command"] if steps.budget_stopped else None
    first = steps.attention[0] if steps.attention else None
    data["show_command"] = prompt_command(project, first) if first else None
    return data


def print_next_steps(steps: NextSteps, project: str, argv: Sequence[str] | None = None) -> None:
    """Print what needs the user after a run, with the commands (nothing if all went well)."""
    from ..reporting.fmt import plural

    if steps.clean:
        return
    shown = Shown()
    lines: list[str] = []
    for failure in steps.failed:
        agent = f" on {failure.agent}" if failure.agent else ""
        lines.append(f"failed    {failure.task_id}{agent}: {one_line(failure.error)}")
    for group in steps.blocked:
        by = ", ".join(group.by) if group.by else "an unfinished task"
        count = plural(len(group.tasks), "task")
        named, more = group.listed()  # as many as a report names
        listed = ", ".join(named) + (f", ... ({more} more)" if more else "")
        lines.append(f"blocked   {count} blocked by {by}: {listed}")
    for waiting in steps.waiting:
        if waiting.calls:
            tid = waiting.task_id
            lines.append(
                f"waiting   {tid} waits for a person to approve {', '.join(waiting.calls)}: "
                f"{_command(['task', 'approve', project, tid])}, or "
                f"{_command(['task', 'reject', project, tid, '--note', 'TEXT'])}; then run again"
            )
            continue
        lines.append(
            f"waiting   {waiting.task_id} waits on a person. Its prompt: "
            f"{prompt_command(project, waiting.task_id)}; when done, record the result: "
            f"{complete_command(project, waiting.task_id)}"
        )
    # The truncated replies: the line under the run's table names them (cli/run.py).
    if steps.not_started and not steps.budget_stopped:
        lines.append(f"unfinished {len(steps.not_started)}: {_ids(steps.not_started)}")
    if steps.budget_stopped:
        lines.append(
            f"budget reached: {len(steps.not_started)} task(s) not started. Go on (each run has "
            f"a budget of its own): {resume_command(argv)}"
        )
    elif steps.failed or steps.blocked or steps.not_started:
        lines.append(f"run again (finished tasks are skipped): {resume_command(argv)}")
    first = steps.attention[0] if steps.attention else None
    if first is not None:
        lines.append(
            f"details: {prompt_command(project, first)} (any task), "
            f"{_command(['tasks', project])} (all)"
        )
    out = console()
    out.print(shown("\n".join(lines)), markup=False, highlight=False, soft_wrap=True)

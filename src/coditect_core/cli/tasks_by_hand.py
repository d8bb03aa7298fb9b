"""``coditect task complete|fail|cancel|reset|rerun``: record what a person did to a task.

Recorded durably in the state store (:mod:`coditect_core.app.by_hand`), so that the next ``run``
respects it: a completed task is kept (skipped, its output going to its dependents) until it is
rerun, a failed one runs again, a cancelled one is held (it and its dependents stay put) until it
is reset, a rerun one (and with ``--with-dependents`` its dependents) runs again.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .options import StateOpt
from .output import ExitCode, Shown, console, fail, fail_for, print_json
from .project_path import ProjectWordArg, TaskIdArg, project_and_id

_T = TypeVar("_T")

__all__ = ["register"]

ProjectArg = ProjectWordArg  # [PROJECT] ID: see project_path.project_and_id
IdArg = TaskIdArg
NoteOpt = Annotated[
    str | None,
    typer.Option("--note", "-n", metavar="TEXT", help="A note for the task's history."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print what was recorded as JSON.")]

_DONE = {
    "complete": "runs keep it and pass its output on, until `coditect task rerun`",
    "fail": "the next run runs it again",
    "cancel": "it stays cancelled, and its dependents blocked, until `coditect task reset`",
    "reset": "the next run runs it",
    "rerun": "the next run runs it",
}


def _recorded(work: Coroutine[Any, Any, _T], as_json: bool) -> _T:
    """Run ``work`` (recording what a person did); a live run holding the lock, a bad project
    file or state, or work at risk exits 2 with the reason."""
    import asyncio

    from ..errors import ProjectFileError, RunLockedError, StateError, WorkAtRiskError

    try:
        return asyncio.run(work)
    except RunLockedError as error:
        fail(f"{error}; try again when the run has ended", ExitCode.BAD_INPUT, as_json=as_json)
    except (ProjectFileError, StateError, WorkAtRiskError, OSError) as error:
        fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)


def _record(
    action: str,
    project_word: str | None,
    task_id_word: str | None,
    *,
    output: str | None,
    note: str | None,
    state: Path | None,
    as_json: bool,
    force: bool = False,
    with_dependents: bool = False,
) -> None:
    from ..app.by_hand import record_by_hand

    project, task_id = project_and_id(project_word, task_id_word, as_json=as_json)
    result = _recorded(
        record_by_hand(
            project,
            task_id,
            action,
            output=output,
            note=note,
            state=state,
            force=force,
            with_dependents=with_dependents,
        ),
        as_json,
    )
    if as_json:
        print_json(result.to_dict())
        return
    esc = Shown().markup
    done = _DONE[action]
    if result.waiting_on:
        waiting = ", ".join(result.waiting_on)
        done = (
            f"it is kept: the next run runs what it depends on that is not done ({waiting}) but "
            f"not {task_id}, whose output its dependents get; "
            f"`coditect task rerun {project} {task_id}` runs it on its agent"
        )
    elif result.dependents:
        done += f", and its dependents: {', '.join(result.dependents)}"
    console().print(
        f"{esc(task_id)}: {esc(result.previous_status)} -> [bold]{esc(result.status)}[/] "
        f"(by hand); {esc(done)}"
    )


def _decide(
    project_word: str | None,
    task_id_word: str | None,
    *,
    approved: bool,
    note: str | None,
    state: Path | None,
    as_json: bool,
) -> None:
    from ..app.by_hand import record_decision

    project, task_id = project_and_id(project_word, task_id_word, as_json=as_json)
    result = _recorded(
        record_decision(project, task_id, approved=approved, note=note, state=state), as_json
    )
    if as_json:
        print_json(result.to_dict())
        return
    esc = Shown().markup
    what = "approved" if approved else "rejected"
    console().print(
        f"{esc(task_id)}: {what} {esc(', '.join(result.calls))}; "
        "the next `coditect run` goes on with it"
    )


def _read_output(path: Path | None, as_json: bool) -> str | None:
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        message = f"--output {path}: cannot read it: {reason}"
        fail_for(error, ExitCode.BAD_INPUT, as_json=as_json, message=message)


def register(app: typer.Typer) -> None:
    task_app = typer.Typer(
        name="task",
        help="Record a task finished (or failed, cancelled, reset, rerun) by hand.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @task_app.command("complete")
    def complete_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                metavar="FILE",
                help="File with the task's result ('-': stdin); passed to its dependents.",
            ),
        ] = None,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Complete a task that has an output with neither --output nor --note "
                "(its output is replaced with nothing).",
            ),
        ] = False,
    ) -> None:
        """Mark a task completed by hand: runs keep it until `task rerun`.

        Its output (the --output file, else the --note) goes to the tasks that need it, even
        while what it depends on is not done (that still runs; this task not). A task already
        completed can be completed again to replace its output; its dependents then run again.
        Completing a task that has an output with neither --output nor --note is refused
        unless --force. A person's output stays in the task's history (`coditect show`).

        Examples:

          coditect task complete project.yaml TASK-003 --output result.md

          coditect task complete project.yaml REVIEW --note "reviewed in PR #12"

          git diff | coditect task complete project.yaml TASK-004 --output -
        """
        text = _read_output(output, as_json)
        _record(
            "complete",
            project,
            task_id,
            output=text,
            note=note,
            state=state,
            as_json=as_json,
            force=force,
        )

    @task_app.command("fail")
    def fail_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Mark a task failed: the next run runs it again.

        Even a task that had completed.

        Examples:

          coditect task fail project.yaml TASK-003 --note "misses the tests"
        """
        _record("fail", project, task_id, output=None, note=note, state=state, as_json=as_json)

    @task_app.command("cancel")
    def cancel_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Cancel a task: it and its dependents wait until `task reset`.

        Runs leave it so until `coditect task reset` (or `coditect run --restart`).

        Examples:

          coditect task cancel project.yaml TASK-005 --note "out of scope"
        """
        _record("cancel", project, task_id, output=None, note=note, state=state, as_json=as_json)

    @task_app.command("reset")
    def reset_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Put a task back to pending (undo a cancel).

        The next run runs it.

        Examples:

          coditect task reset project.yaml TASK-005
        """
        _record("reset", project, task_id, output=None, note=note, state=state, as_json=as_json)

    @task_app.command("approve")
    def approve_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Approve the tool call a task waits on (its agent's approve:): the next run runs it.

        Examples:

          coditect task approve project.yaml TASK-003
        """
        _decide(project, task_id, approved=True, note=None, state=state, as_json=as_json)

    @task_app.command("reject")
    def reject_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Reject the tool call a task waits on: the next run tells the agent, with the note.

        Examples:

          coditect task reject project.yaml TASK-003 --note "do not delete the fixtures"
        """
        _decide(project, task_id, approved=False, note=note, state=state, as_json=as_json)

    @task_app.command("rerun")
    def rerun_command(
        project: ProjectArg = None,
        task_id: IdArg = None,
        with_dependents: Annotated[
            bool,
            typer.Option(
                "--with-dependents",
                help="Also every task that depends on it, directly or not (even those "
                "completed or cancelled by hand).",
            ),
        ] = False,
        note: NoteOpt = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Mark a task to run again (even one completed) on the next run.

        Even a task completed by a run or by hand; then what depends on it runs again too,
        except tasks completed by hand (unless --with-dependents). A person's output it
        replaces stays in the task's history.

        Examples:

          coditect task rerun project.yaml TASK-005

          coditect task rerun project.yaml TASK-005 --with-dependents
        """
        _record(
            "rerun",
            project,
            task_id,
            output=None,
            note=note,
            state=state,
            as_json=as_json,
            with_dependents=with_dependents,
        )

    app.add_typer(task_app)

"""``coditect status``, ``tasks``, ``show`` and ``next``: where a project stands, read-only.

They read the project file and its state store without writing anything (no run lock, nothing
marked interrupted; see :mod:`coditect_core.app.view`), so they work from another terminal
while a run is writing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import JsonOpt, StateOpt
from .output import ExitCode, Shown, console, fail, fail_for, print_json, write_text
from .project_path import ProjectArg, ProjectWordArg, TaskIdArg, project_and_id, project_file

if TYPE_CHECKING:
    from ..app.view import ProjectView, TaskView
    from ..reporting.model import AttemptRow

__all__ = ["STATUS_STYLES", "register"]

STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "blocked": "yellow",
    "cancelled": "magenta",
    "in_progress": "cyan",
    "awaiting_human": "blue",
    "pending": "white",
}

ATTEMPT_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "interrupted": "yellow",
    "cancelled": "magenta",
    "awaiting_human": "blue",
}


SHOW_LIMIT = 20_000
"""``show`` prints this many characters of an output, a prompt or an error (``--full``: all)."""


def load(project: Path | None, state: Path | None, as_json: bool = False) -> ProjectView:
    """The project's view, or exit 2 (4 if the environment failed) with the reason."""
    from ..app.view import load_view
    from ..errors import ProjectFileError, StateError

    project = project_file(project, as_json=as_json)
    try:
        return load_view(project, state=state)
    except (ProjectFileError, StateError) as error:
        fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
    except OSError as error:
        message = f"{project}: {error.strerror or error}"
        fail_for(error, ExitCode.BAD_INPUT, as_json=as_json, message=message)


def styled(status: str, held: bool = False, kept: bool = False) -> str:
    from rich.markup import escape

    from ..reporting.fmt import inert

    text = "cancelled (held)" if held else "completed (kept by hand)" if kept else status
    return f"[{STATUS_STYLES.get(status, 'white')}]{escape(inert(text))}[/]"


def _print_status(view: ProjectView) -> None:
    from ..reporting import fmt

    out = console()
    esc = Shown().markup
    out.print(f"[bold]{esc(view.name)}[/]  [dim]{esc(view.path)}[/]")
    if not view.state_exists:
        out.print(f"not run yet (no state at {esc(str(view.state_path))})")
    last = view.last_run
    if view.holder is not None:
        out.print(f"[cyan]running now[/]: {esc(view.holder.describe())}")
    if last is not None:
        took = "" if last.finished_at is None else f", {fmt.duration(last.wall_s)}"
        state = last.status
        if last.status == "running" and view.holder is None:
            state = "running, but its process is gone (the next run marks it interrupted)"
        out.print(
            f"last run: {last.run_id} [dim]({fmt.when(last.started_at)}{took})[/] {esc(state)}"
            f"  [dim]{len(view.runs)} run(s) in all[/]"
        )
        if last.cached:
            out.print(
                f"  [cyan]cached[/]: {last.cached} attempt(s) answered from the call journal "
                "(no provider call, no cost)"
            )
    total = len(view.tasks)
    counts = view.counts
    parts = [f"{counts.get('completed', 0)}/{total} completed"]
    parts += [styled(s) + f" {n}" for s, n in counts.items() if s != "completed" and n]
    out.print("tasks: " + ", ".join(parts))
    for attempt in view.in_flight():
        out.print(
            f"  [cyan]in flight[/] {esc(attempt.task_id)} on {esc(attempt.agent or '?')} "
            f"for {fmt.duration(attempt.duration_s)}"
        )
    held = [v.task_id for v in view.tasks if v.held]
    if held:
        out.print(f"held (cancelled by hand): {esc(', '.join(held))}")
    kept = [v.task_id for v in view.tasks if v.kept]
    if kept:
        out.print(f"kept (completed by hand): {esc(', '.join(kept))}")
    waiting = [v.task_id for v in view.tasks if v.row.status == "awaiting_human"]
    _print_waiting(view, waiting)
    ready = [v.task_id for v in view.ready() if v.task_id not in set(waiting)]
    if ready:
        out.print(f"next: {esc(', '.join(ready))}  [dim](coditect run {esc(view.path)})[/]")
    elif counts.get("completed", 0) == total:
        out.print("[green]all tasks completed[/]")
    if view.unknown_tasks:
        gone = esc(", ".join(view.unknown_tasks))
        out.print(f"[dim]in the state but no longer in the file: {gone}[/]")


def _print_waiting(view: ProjectView, waiting: list[str]) -> None:
    """The tasks waiting on a person, each with where its prompt is and the command that
    records the person's result (a run does not finish them)."""
    from .run_summary import complete_command, prompt_command

    lines = [
        f"waiting on a person: {tid}. Its prompt: {prompt_command(view.path, tid)}; when done, "
        f"record the result: {complete_command(view.path, tid)}"
        for tid in waiting
    ]
    if lines:
        console().print(Shown()("\n".join(lines)), markup=False, highlight=False, soft_wrap=True)


def _waiting_json(view: ProjectView) -> list[dict[str, str]]:
    """The tasks waiting on a person, with the two commands, for ``status --json``."""
    from .run_summary import complete_command, prompt_command

    return [
        {
            "task_id": v.task_id,
            "complete_command": complete_command(view.path, v.task_id),
            "prompt_command": prompt_command(view.path, v.task_id),
        }
        for v in view.tasks
        if v.row.status == "awaiting_human"
    ]


TABLE_ROWS = 1_000
"""``tasks`` draws a table up to this many tasks; more are listed in plain aligned columns (a
drawn table costs about a millisecond a row: 100,000 rows would take minutes)."""


def _state(v: TaskView) -> str:
    """A task's status in words, with what a person decided (held, kept)."""
    if v.held:
        return "cancelled (held)"
    if v.kept:
        return "completed (kept by hand)"
    return v.row.status + (" (truncated)" if v.truncated else "")


def _task_cells(v: TaskView) -> list[str]:
    from ..reporting import fmt

    figures = v.row.figures
    return [
        v.task_id,
        _state(v) + (" → next" if v.ready else ""),
        v.task.agent or "",
        " ".join(v.task.dependencies),
        str(figures.attempts) if figures.attempts else "",
        fmt.count(figures.tokens) if figures.attempts else "",
        v.task.title,
    ]


def _tasks_listing(views: list[TaskView], title: str) -> None:
    """The tasks in aligned plain columns, written at once: linear, a few seconds for 100,000."""
    shown = Shown()
    headers = ["task", "status", "agent", "needs", "tries", "tokens", "title"]
    rows = [[" ".join(shown(cell).split()) for cell in _task_cells(v)] for v in views]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    widths = [min(w, 40) for w in widths]  # a long list of needs does not push titles away

    def line(cells: list[str]) -> str:
        head = "  ".join(
            c.rjust(w) if i in (4, 5) else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )
        return f"{head}  {cells[-1]}".rstrip() + "\n"

    console().file.write(shown(title) + "\n" + line(headers) + "".join(map(line, rows)))
    console().file.flush()


def _tasks_table(views: list[TaskView], title: str) -> None:
    from rich.table import Table

    from ..reporting import fmt

    if len(views) > TABLE_ROWS:
        _tasks_listing(views, title)
        return
    esc = Shown().markup

    def fit(header: str, cells: list[str]) -> int:  # keep ids and statuses whole
        return max([len(header), *(len(c) for c in cells)])

    table = Table(title=esc(title), title_justify="left")
    ids = [esc(v.task_id) for v in views]
    states = [_state(v) + (" → next" if v.ready else "") for v in views]
    table.add_column("task", no_wrap=True, min_width=fit("task", ids))
    table.add_column("status", no_wrap=True, min_width=fit("status", states))
    table.add_column("agent", no_wrap=True)
    table.add_column("needs", overflow="fold", max_width=fit("needs", ids))  # one id a line
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("title", overflow="fold")
    for i, v in enumerate(views):
        figures = v.row.figures
        table.add_row(
            ids[i],
            styled(v.row.status, v.held, v.kept)
            + (" [yellow](truncated)[/]" if v.truncated else "")
            + (" [bold]→ next[/]" if v.ready else ""),
            esc(v.task.agent or ""),
            esc(" ".join(v.task.dependencies)),
            str(figures.attempts) if figures.attempts else "",
            fmt.count(figures.tokens) if figures.attempts else "",
            esc(v.task.title),
        )
    console().print(table)


def _print_long(text: str, full: bool, more: str, *, style: str = "") -> None:
    """``text`` from outside, written as is shown (masked, inert) in time linear in its length,
    cut at :data:`SHOW_LIMIT` characters unless ``full``, with a note saying how many bytes
    were cut and ``more`` (how to get the whole)."""
    from ..reporting import fmt

    out = console()
    body, cut = (text, 0) if full else fmt.clip_bytes(text, SHOW_LIMIT)
    if style and len(body) <= SHOW_LIMIT:
        out.print(Shown()(body), markup=False, style=style)
    else:
        write_text(body if body.endswith("\n") else body + "\n")
    if cut:
        out.print(f"[yellow]… cut here: {cut:,} more bytes not shown; {more}[/]", soft_wrap=True)


def _print_show(view: ProjectView, task: TaskView, full: bool = False) -> None:
    from rich.rule import Rule

    from ..reporting import fmt

    out = console()
    esc = Shown().markup
    t, row = task.task, task.row
    more = f"`coditect show {esc(view.path)} {esc(t.task_id)} --full` prints it whole (--json too)"
    out.print(f"[bold]{esc(t.task_id)}[/]: {esc(t.title)}")
    out.print(
        f"status: {styled(row.status, task.held, task.kept)}"
        + (" [yellow](truncated: the reply was cut off at max_tokens)[/]" if task.truncated else "")
        + (" [bold](ready: the next run starts it)[/]" if task.ready else "")
        + f"  agent: {esc(t.agent or '')}  priority: {t.priority.value}"
    )
    if t.dependencies:
        out.print(f"needs: {esc(', '.join(t.dependencies))}")
    dependents = view.dependents(t.task_id)
    if dependents:
        out.print(f"needed by: {esc(', '.join(dependents))}")
    if task.reason:
        out.print(f"[dim]the next run runs it: {esc(task.reason)}[/]")
    for message in view.messages(t.task_id):
        out.print(Rule(f"prompt: {esc(message['role'])}", align="left", style="dim"))
        _print_long(message["content"], full, more)
    if row.value is not None:  # a typed task: its value, pretty (the output is its JSON too)
        out.print(Rule("value (validated JSON)", align="left", style="dim"))
        _print_long(json.dumps(row.value, ensure_ascii=False, indent=2), full, more)
    else:
        out.print(Rule("output", align="left", style="dim"))
        _print_long(row.output if row.output is not None else "(none)", full, more)
    if row.error:
        out.print(Rule("error", align="left", style="dim"))
        _print_long(row.error, full, more, style="red")
    out.print(Rule(f"attempts ({len(row.attempts)})", align="left", style="dim"))
    for a in row.attempts:
        took = "" if a.finished_at is None else f"  {fmt.duration(a.duration_s)}"
        tokens = (
            ""
            if a.usage is None
            else f"  tokens {fmt.tokens(a.prompt_tokens, a.completion_tokens)}"
        )
        who = (a.agent or "?") + (f" ({a.model})" if a.model else "")
        finish = ""
        if a.finish_reason:
            finish = (
                "  [yellow]truncated (finish: length)[/]"
                if a.truncated
                else f"  [dim]finish: {esc(a.finish_reason)}[/]"
            )
        out.print(
            f"#{a.attempt_id} run {a.run_id}  {esc(who)}  "
            f"[{ATTEMPT_STYLES.get(a.status, 'white')}]{esc(a.status)}[/]{finish}"
            + (" [cyan]cached[/] [dim](from the journal, no call)[/]" if a.cached else "")
            + "  "
            f"[dim]{fmt.when(a.started_at)}{took}{tokens}[/]"
        )
        if a.error:
            error = a.error if full else fmt.clip(a.error, SHOW_LIMIT)[0]
            out.print(f"    [red]{esc(error)}[/]")
        _print_turn(a, full)
    if row.history:
        out.print(Rule("history", align="left", style="dim"))
        for e in row.history:
            run = f"run {e.run_id}" if e.run_id is not None else ""
            out.print(
                f"[dim]{fmt.when(e.at)}[/] {run:<7} {styled(e.status)}"
                + (f"  {esc(e.note)}" if e.note else "")
            )
            if e.output is not None and e.output != row.output:  # a person's, replaced since
                out.print("    [dim]output given then (replaced since):[/]")
                _print_long(e.output, full, more)


TOOL_SHOW_LIMIT = 300
"""Characters of a tool call's arguments or result ``show`` prints (``--full``: all)."""


def _print_turn(a: AttemptRow, full: bool) -> None:
    """An agent loop's turn: the calls the model asked for, each with its result."""
    from ..reporting import fmt

    if a.turn is None and not a.tool_runs:
        return
    out = console()
    esc = Shown().markup

    def short(text: str) -> str:
        return esc(text if full else fmt.clip(text, TOOL_SHOW_LIMIT)[0])

    ran = {c.call_id: c for c in a.tool_runs}
    asked = [(str(c.get("id", "")), str(c.get("name", "")), c) for c in a.tool_calls]
    if a.turn is not None:
        text = f": {short(a.output)}" if a.output else ""
        out.print(f"    [bold]turn {a.turn}[/]{text}")
    for call_id, name, call in asked:
        arguments = call.get("invalid_arguments") or json.dumps(
            call.get("arguments", {}), ensure_ascii=False, sort_keys=True
        )
        out.print(f"      [cyan]{esc(name)}[/]({short(str(arguments))}) [dim]{esc(call_id)}[/]")
        result = ran.pop(call_id, None)
        if result is None:
            out.print("        [dim]-> no result recorded (the run stopped first)[/]")
        else:
            style = "red" if result.is_error else "green"
            took = f" [dim]{fmt.duration(result.duration_s or 0.0)}[/]"
            out.print(f"        [{style}]->[/] {short(result.result)}{took}")
    for result in ran.values():  # recorded under this turn but not among its calls
        out.print(f"      [cyan]{esc(result.name)}[/] -> {short(result.result)}")


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(
        project: ProjectArg = None, state: StateOpt = None, as_json: JsonOpt = False
    ) -> None:
        """Where a project stands: its last run, task counts, what runs next.

        Read-only: safe to run from another terminal while `coditect run` works.

        Examples:

          coditect status                  # ./coditect.yaml

          coditect status examples/quickstart.yaml

          watch -n 2 coditect status project.yaml

          coditect status project.yaml --json | jq .counts
        """
        view = load(project, state, as_json)
        if as_json:
            print_json({**view.status_dict(), "awaiting_human": _waiting_json(view)})
        else:
            _print_status(view)

    @app.command("tasks")
    def tasks_command(
        project: ProjectArg = None,
        status: Annotated[
            list[str] | None,
            typer.Option(
                "--status",
                "-s",
                metavar="STATUS",
                help="Only tasks with this status (pending, in_progress, completed, failed, "
                "blocked, cancelled, awaiting_human) or 'ready'; repeatable.",
            ),
        ] = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List the tasks in file order with their status, agent and attempts.

        Examples:

          coditect tasks project.yaml

          coditect tasks project.yaml --status failed --status blocked

          coditect tasks project.yaml --json | jq '.tasks[].status'
        """
        from ..orchestration.task import TaskStatus

        allowed = {s.value for s in TaskStatus} | {"ready"}
        wanted = set(status or ())
        unknown = sorted(wanted - allowed)
        if unknown:
            fail(
                f"--status {unknown[0]!r}: expected one of {', '.join(sorted(allowed))}",
                ExitCode.BAD_INPUT,
                as_json=as_json,
            )
        view = load(project, state, as_json)
        views = [
            v
            for v in view.tasks
            if not wanted or v.row.status in wanted or ("ready" in wanted and v.ready)
        ]
        if as_json:
            print_json({"project": view.name, "tasks": [v.summary() for v in views]})
        else:
            _tasks_table(views, f"{view.name}: {len(views)} of {len(view.tasks)} tasks")

    @app.command("show")
    def show_command(
        project_word: ProjectWordArg = None,
        task_id_word: TaskIdArg = None,
        state: StateOpt = None,
        full: Annotated[
            bool,
            typer.Option(
                "--full", help=f"Print long texts whole (else cut at {SHOW_LIMIT:,} characters)."
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Show one task: its prompt, output, attempts and history.

        The prompt is what its agent gets: the system prompt, then the task with the recorded
        outputs of the tasks it needs. A long prompt, output or error is cut with a note
        saying how many bytes were left out; --full prints it whole, --json gives it exactly.

        Examples:

          coditect show TASK-002           # a task of ./coditect.yaml

          coditect show examples/quickstart.yaml STEP-4.3

          coditect show project.yaml TASK-002 --full | less -R

          coditect show project.yaml TASK-002 --json | jq -r .output > task-002.md
        """
        import difflib

        from ..app.view import attempt_dict
        from ..reporting import fmt

        project, task_id = project_and_id(project_word, task_id_word, as_json=as_json)
        view = load(project, state, as_json)
        try:
            task = view.task(task_id)
        except KeyError:
            ids = [v.task_id for v in view.tasks]
            close = difflib.get_close_matches(task_id, ids, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(
                f"{view.path}: task {task_id!r} is not in the file{hint}",
                ExitCode.BAD_INPUT,
                as_json=as_json,
            )
        if not as_json:
            _print_show(view, task, full)
            return
        t = task.task
        messages = view.messages(task_id)
        print_json(
            {
                **task.summary(),
                "description": t.description,
                "dependents": view.dependents(task_id),
                "reason": task.reason,
                "messages": messages,
                "prompt": messages[-1]["content"],
                "output": task.row.output,
                **({"value": task.row.value} if task.row.value is not None else {}),
                "attempts": [attempt_dict(a) for a in task.row.attempts],
                "history": [
                    {
                        "run_id": e.run_id,
                        "status": e.status,
                        "at": fmt.iso(e.at),
                        "note": e.note,
                        **({"output": e.output} if e.output is not None else {}),
                    }
                    for e in task.row.history
                ],
            }
        )

    @app.command("next")
    def next_command(
        project: ProjectArg = None, state: StateOpt = None, as_json: JsonOpt = False
    ) -> None:
        """List the tasks the next run starts at once.

        Their dependencies are done.

        A task that waits on a person (an interactive agent) is listed with the command that
        finishes it by hand.

        Examples:

          coditect next project.yaml

          coditect next project.yaml --json | jq -r '.ready[].task_id'
        """
        view = load(project, state, as_json)
        waiting = [v for v in view.tasks if v.row.status == "awaiting_human"]
        ready = [v for v in view.ready() if v.row.status != "awaiting_human"]
        if as_json:
            print_json(
                {
                    "project": view.name,
                    "ready": [
                        {
                            "task_id": v.task_id,
                            "title": v.task.title,
                            "agent": v.task.agent,
                            "priority": v.task.priority.value,
                            "reason": v.reason,
                        }
                        for v in ready
                    ],
                    "awaiting_human": [v.task_id for v in waiting],
                    "held": [v.task_id for v in view.tasks if v.held],
                    "running": view.running,
                }
            )
            return
        out = console()
        esc = Shown().markup

        def detail(v: TaskView) -> str:
            return esc(f"{v.task.agent or ''}, {v.task.priority.value}; {v.reason or ''}")

        lines = [
            f"[bold]{esc(v.task_id)}[/] {esc(v.task.title)} [dim]({detail(v)})[/]" for v in ready
        ]
        lines += [
            f"[blue]waiting on a person[/]: {esc(v.task_id)}: finish it with "
            f"`coditect task complete {esc(view.path)} {esc(v.task_id)} --output FILE`"
            for v in waiting
        ]
        if lines:  # one print: linear in the number of tasks, without a cost per line
            out.print("\n".join(lines))
        if not ready and not waiting:
            if all(v.row.status == "completed" for v in view.tasks):
                out.print("[green]nothing to do: every task is completed[/]")
            elif view.running:
                out.print("nothing ready: the running run is working on the rest")
            else:
                out.print("nothing ready: the remaining tasks wait on held or unfinished tasks")

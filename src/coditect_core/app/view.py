"""Read-only views of a project: its file together with what its state store recorded.

This answers the questions of ``coditect status``, ``tasks``, ``show``, ``next`` and ``report``
(and of any program that wants the same answers) without changing anything: the store is opened
read-only (no file is created, no run lock is taken, nothing is marked interrupted) and
everything is read in one read transaction, so a view taken from another process while a run
writes is one consistent picture. The rows are the one read model of runs and tasks
(:mod:`coditect_core.reporting`): :func:`load_report` is that model alone, :func:`load_view`
adds what the next run would do. No API key is needed: ``${VAR}`` references that are unset stay
as written (:func:`resolve_offline`), which only matters for a setting that changes a task's
content hash (an agent's ``model`` or ``system_prompt``), and then the run could not use that
agent anyway.

What ``run`` would do next comes from the same resume plan it follows
(:func:`~coditect_core.orchestration.resume.plan_resume`, with the same content hashes), plus
the tasks *held* by hand: a task cancelled with ``coditect task cancel`` stays cancelled, and its
dependents blocked, until it is reset (``coditect task reset``) or the project restarted; a task
completed with ``coditect task complete`` is *kept*: runs keep it and pass its output on,
whatever happens upstream, until ``coditect task rerun`` (or a restart) releases it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StateError
from ..orchestration.prompts import UpstreamOutput, build_messages
from ..orchestration.resume import ResumePlan, SuccessRecord, agent_task_hash, plan_resume
from ..orchestration.task import AgentTask, TaskStatus
from ..project import Project, ProjectFile, paused_gc, read_project_file
from ..reporting.build import StoreContents, read_store, report_from
from ..reporting.fmt import iso
from ..reporting.model import AttemptRow, ReportData, RunRow, TaskRow
from ..store.records import TaskRecord

if TYPE_CHECKING:
    from ..store.lock import LockHolder

__all__ = [
    "CANCELLED_BY_HAND",
    "ProjectView",
    "TaskView",
    "attempt_dict",
    "definition_hashes",
    "held_task_ids",
    "kept_task_ids",
    "load_report",
    "load_view",
    "resolve_offline",
    "run_dict",
]

CANCELLED_BY_HAND = "cancelled by hand"
"""How the error (and history note) of a task cancelled with ``coditect task cancel`` reads.
Only words for people: whether a task is held is the store's ``held`` flag."""


def held_task_ids(records: Iterable[TaskRecord]) -> set[str]:
    """The tasks the store records as held cancelled (cancelled by hand, not reset since)."""
    return {r.task_id for r in records if r.held and r.status == TaskStatus.CANCELLED.value}


def kept_task_ids(records: Iterable[TaskRecord]) -> set[str]:
    """The tasks the store records as held completed (completed by hand): runs keep them,
    whatever happens upstream, until ``task rerun`` or ``run --restart`` releases them."""
    return {r.task_id for r in records if r.held and r.status == TaskStatus.COMPLETED.value}


def resolve_offline(project_file: ProjectFile) -> Project:
    """``project_file`` resolved for every task without needing any variable to be set: an
    unset ``${NAME}`` (without a default) reads as itself."""
    environ = dict(os.environ)
    for names in project_file.variables().values():
        for name in names:
            environ.setdefault(name, f"${{{name}}}")
    return project_file.resolve(environ=environ)


def definition_hashes(project: Project) -> dict[str, str]:
    """Each task's content hash, exactly as ``coditect run`` computes it."""
    default = project.defaults.agent
    return {task.task_id: agent_task_hash(task, project.agents, default) for task in project.tasks}


@dataclass(frozen=True)
class TaskView:
    """One task of the file: its definition, its row (status, attempts, figures, output, error,
    history) and what the next run would do with it."""

    task: AgentTask
    row: TaskRow
    held: bool = False
    """Cancelled by hand: runs leave it cancelled until it is reset."""
    kept: bool = False
    """Completed by hand: runs keep it (and its output) until ``task rerun`` releases it."""
    ready: bool = False
    """Whether ``coditect run`` would start it at once (it must run, and nothing it needs must)."""
    reason: str | None = None
    """Why a run would run it (``not succeeded yet``, ``definition changed``...), else None."""

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def truncated(self) -> bool:
        """Its output is a model's reply cut off at ``max_tokens`` (not a person's)."""
        return self.row.truncated and not self.kept

    def summary(self) -> dict[str, Any]:
        """A JSON-ready row (the ``tasks --json`` format)."""
        row = self.row
        return {
            "task_id": self.task_id,
            "title": self.task.title,
            "status": row.status,
            "agent": self.task.agent,
            "priority": self.task.priority.value,
            "dependencies": list(self.task.dependencies),
            "attempts": row.figures.attempts,
            "tokens": {
                "prompt": row.figures.prompt_tokens,
                "completion": row.figures.completion_tokens,
            },
            "updated_at": iso(row.updated_at),
            "error": row.error,
            "held": self.held,
            "kept": self.kept,
            "truncated": self.truncated,
            "ready": self.ready,
        }


@dataclass(frozen=True)
class ProjectView:
    """A project file and its recorded state, read at one moment: the rows of its runs and
    tasks (``report``, every task of the file and of the store) and the file's tasks in file
    order, each with what the next run would do with it (``tasks``)."""

    name: str
    path: str
    state_path: Path
    state_exists: bool
    project: Project
    report: ReportData
    tasks: list[TaskView]
    plan: ResumePlan
    holder: LockHolder | None = None
    """The live process running the project now, if any (advisory)."""

    def task(self, task_id: str) -> TaskView:
        """The task called ``task_id`` (``KeyError`` if the file has none)."""
        for view in self.tasks:
            if view.task_id == task_id:
                return view
        raise KeyError(task_id)

    @property
    def runs(self) -> list[RunRow]:
        return self.report.runs

    @property
    def read_at(self) -> float:
        return self.report.generated_at

    @property
    def unknown_tasks(self) -> list[str]:
        """Tasks the store knows that the file no longer defines."""
        return [row.task_id for row in self.report.tasks if not row.defined]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for view in self.tasks:
            status = view.row.status
            out[status] = out.get(status, 0) + 1
        return out

    @property
    def last_run(self) -> RunRow | None:
        return self.runs[-1] if self.runs else None

    @property
    def running(self) -> bool:
        """Whether a live process is running the project now."""
        return self.holder is not None

    def in_flight(self) -> list[AttemptRow]:
        """Attempts recorded as running (by a live run, or one that died: see ``running``)."""
        return [a for view in self.tasks for a in view.row.attempts if a.status == "running"]

    def ready(self) -> list[TaskView]:
        return [view for view in self.tasks if view.ready]

    def dependents(self, task_id: str) -> list[str]:
        return [v.task_id for v in self.tasks if task_id in v.task.dependencies]

    def messages(self, task_id: str) -> list[dict[str, str]]:
        """The messages the task's agent gets: system prompt, and the task with the recorded
        outputs of its dependencies as context."""
        view = self.task(task_id)
        titles = {v.task_id: v.task.title for v in self.tasks}
        upstream = [
            UpstreamOutput(
                dep,
                titles.get(dep, dep),
                self.task(dep).row.output or "",
                value=self.task(dep).row.value,
            )
            for dep in dict.fromkeys(view.task.dependencies)
            if dep in titles and self.task(dep).row.output is not None
        ]
        agent = None
        name = view.task.agent or self.project.defaults.agent
        if name and name in self.project.agents:
            agent = self.project.agents.get(name)
        return [
            {"role": m["role"], "content": m["content"]}
            for m in build_messages(view.task, agent, upstream)
        ]

    def status_dict(self) -> dict[str, Any]:
        """The ``status --json`` format."""
        last = self.last_run
        return {
            "project": self.name,
            "file": self.path,
            "state": str(self.state_path),
            "state_exists": self.state_exists,
            "tasks": len(self.tasks),
            "counts": self.counts,
            "done": self.counts.get(TaskStatus.COMPLETED.value, 0),
            "running": self.running,
            "holder": None
            if self.holder is None
            else {
                "pid": self.holder.pid,
                "host": self.holder.host,
                "run_id": self.holder.run_id,
                "since": iso(self.holder.since),
            },
            "runs": len(self.runs),
            "last_run": None if last is None else run_dict(last),
            "in_flight": [
                {
                    "task_id": a.task_id,
                    "attempt_id": a.attempt_id,
                    "run_id": a.run_id,
                    "agent": a.agent,
                    "model": a.model,
                    "started_at": iso(a.started_at),
                    "elapsed_s": round(a.duration_s, 3),
                }
                for a in self.in_flight()
            ],
            "ready": [v.task_id for v in self.ready()],
            "held": [v.task_id for v in self.tasks if v.held],
            "unknown_tasks": self.unknown_tasks,
        }


def run_dict(run: RunRow) -> dict[str, Any]:
    """A JSON-ready run (the ``status --json`` format)."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "cached_attempts": run.cached,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "pid": run.pid,
        "host": run.host,
    }


def attempt_dict(a: AttemptRow) -> dict[str, Any]:
    """A JSON-ready attempt with its whole output (the ``show --json`` format)."""
    return {
        "attempt_id": a.attempt_id,
        "run_id": a.run_id,
        "agent": a.agent,
        "model": a.model,
        "interface": a.interface,
        "status": a.status,
        "started_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
        "duration_s": None if a.finished_at is None else round(a.duration_s, 3),
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "cost_usd": a.cost_usd,
        "cached": a.cached,
        "error": a.error,
        "output": a.output,
        "finish_reason": a.finish_reason,
        "truncated": a.truncated,
        **(
            {
                "turn": a.turn,
                "tool_calls": [
                    {
                        **call,
                        **next(
                            (
                                {
                                    "result": r.result,
                                    "is_error": r.is_error,
                                    "duration_s": r.duration_s,
                                }
                                for r in a.tool_runs
                                if r.call_id == call.get("id")
                            ),
                            {"result": None},
                        ),
                    }
                    for call in a.tool_calls
                ],
            }
            if a.turn is not None or a.tool_runs
            else {}
        ),
    }


def _plan(
    tasks: list[AgentTask],
    hashes: Mapping[str, str],
    records: Mapping[str, TaskRecord],
    held: set[str],
    kept: set[str],
    busy: set[str],
) -> tuple[ResumePlan, set[str]]:
    """The resume plan a run would follow now, and the tasks it would start at once."""
    succeeded = {
        tid: SuccessRecord(r.succeeded_hash, int(r.success_seq or 0), r.output, r.value)
        for tid, r in records.items()
        if r.status == TaskStatus.COMPLETED.value and tid in hashes
    }
    dependencies = {t.task_id: t.dependencies for t in tasks}
    plan = plan_resume(hashes, dependencies, succeeded, held=held, kept=kept)
    return plan, set(plan.starts_now(dependencies, busy))


def _read(db: Path, project: str) -> tuple[StoreContents, LockHolder | None]:
    """Everything the store holds on ``project``, and the live holder of its run lock.

    (A database is created whole before it gets its name: a reader never finds it half-made.)"""
    from ..store import StateStore

    with StateStore.open(db, readonly=True) as store:
        return read_store(store, project), store.lock_holder(project)


def load_view(
    path: str | os.PathLike[str], *, state: str | os.PathLike[str] | None = None
) -> ProjectView:
    """Read the project file at ``path`` and its state (``.coditect/state.db`` beside it unless
    ``state`` says otherwise). A project never run has a view with every task ``pending``.

    Raises :class:`ProjectFileError` for a bad file, :class:`StateError` for an unusable store.
    Linear in the number of tasks (the garbage collector paused while the view is built).
    """
    with paused_gc():  # a few objects per task, none in a cycle
        return _load_view(path, state)


def _load_view(path: str | os.PathLike[str], state: str | os.PathLike[str] | None) -> ProjectView:
    from ..store import state_path_for

    project_file = read_project_file(path)
    project = resolve_offline(project_file)
    db = state_path_for(path, state)
    name = project_file.name
    holder = None
    contents = StoreContents([], [], [], [])
    exists = db.exists()
    if exists:
        contents, holder = _read(db, name)
    report = report_from(contents, name, tasks=project.tasks)
    records = {r.task_id: r for r in contents.tasks}
    held, kept = held_task_ids(records.values()), kept_task_ids(records.values())
    # A task in progress is busy only while its run lives: a dead run's would run again.
    busy = {t for t, r in records.items() if r.status == TaskStatus.IN_PROGRESS.value and holder}
    plan, ready = _plan(project.tasks, definition_hashes(project), records, held, kept, busy)
    rows = {row.task_id: row for row in report.tasks}
    views = [
        TaskView(
            task=task,
            row=rows[task.task_id],
            held=task.task_id in held,
            kept=task.task_id in kept,
            ready=task.task_id in ready,
            reason=plan.reasons.get(task.task_id),
        )
        for task in project.tasks
    ]
    return ProjectView(
        name=name,
        path=project_file.path,
        state_path=db,
        state_exists=exists,
        project=project,
        report=report,
        tasks=views,
        plan=plan,
        holder=holder,
    )


def load_report(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    run_id: int | None = None,
) -> ReportData:
    """The rows of the runs and tasks of the project file at ``path`` (of run ``run_id`` only,
    if given), from its state (``.coditect/state.db`` beside it unless ``state`` says
    otherwise): the ``coditect report``.

    Raises :class:`ProjectFileError` for a bad file, :class:`StateError` for a project never
    run (no state), an unusable store, or a run it does not have.
    """
    with paused_gc():  # a few objects per task, none in a cycle
        return _load_report(path, state, run_id)


def _load_report(
    path: str | os.PathLike[str], state: str | os.PathLike[str] | None, run_id: int | None
) -> ReportData:
    from ..store import state_path_for

    project_file = read_project_file(path)
    db = state_path_for(path, state)
    if not db.exists():
        raise StateError(
            f"{db}: no state yet: the project has not been run (`coditect run {path}` first)"
        )
    contents, _ = _read(db, project_file.name)
    tasks = resolve_offline(project_file).tasks
    return report_from(contents, project_file.name, tasks=tasks, run_id=run_id)

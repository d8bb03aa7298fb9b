"""``ProjectSession``: a project file, its state store and an orchestrator, opened together.

This is what ``coditect run`` (and any program that wants the same behaviour) uses: load and
check the project file, open its durable state (``.coditect/state.db`` beside the file unless
told otherwise), build a :class:`ProjectOrchestrator` recording into the store, decide what must
run (the resume plan: skip tasks that succeeded and did not change, re-run changed tasks and
everything downstream), run, and record how the run ended.

The file's reliability settings reach the executor and the orchestrator here: each agent's
``requests_per_minute``, ``tokens_per_minute``, ``max_concurrency``, ``price`` and
``fallback_on``, each task's ``timeout`` (else ``defaults.timeout``), and the run's ``budget``
(which ``max_cost_usd`` / ``max_tokens`` given to :meth:`ProjectSession.open` override).

::

    async with ProjectSession.open("project.yaml") as session:
        outcome = await session.run(max_concurrency=4)
        counts = outcome.summary.counts

:func:`preview_run` is ``coditect run --dry-run``: the same plan, decided without writing
anything (the state is read read-only, and a project never run has none to read).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import StateError
from ..llm_abstractions.limits import AgentLimits
from ..llm_abstractions.pricing import Price, PriceBook, price_data_version
from ..orchestration.execution_result import ExecutionResult, ExecutionStatus
from ..orchestration.executor import TaskExecutor
from ..orchestration.orchestrator import ProjectOrchestrator
from ..orchestration.resume import ResumePlan, SuccessRecord, agent_task_hash, plan_resume
from ..orchestration.runners import Runner, make_runner
from ..orchestration.scheduler import descendants
from ..orchestration.spend import Budget
from ..orchestration.summary import RunSummary
from ..orchestration.task import TaskStatus
from ..project import Project, paused_gc, read_project_file
from ..store import StateStore, backup_state, state_path_for
from ..store.observer import StoreObserver, run_status
from .doctor import check_run_agents
from .view import held_task_ids, kept_task_ids

__all__ = [
    "ProjectSession",
    "RunOutcome",
    "build_executor",
    "preview_run",
    "preview_run_records",
    "resolve_project",
    "restart_scope",
    "run_budget",
]

logger = logging.getLogger(__name__)


def _resolve(
    path: str | os.PathLike[str],
    only: Iterable[str] | None,
    agent: str | None,
    *,
    check_agents: bool = False,
) -> Project:
    """``path`` read, checked and resolved for a run of ``only`` (and what they need); with
    ``check_agents``, every agent those tasks can reach is checked first, as ``coditect doctor``
    does offline (:func:`~.doctor.check_run_agents`: every problem at once)."""
    project_file = read_project_file(path)
    wanted = list(only) if only else []
    # The ids themselves too, so that resolve() refuses an unknown one (did you mean...).
    selected = [*wanted, *project_file.with_dependencies(wanted)] if wanted else None
    if check_agents:
        known = set(project_file.task_ids)
        chosen = project_file.task_ids if selected is None else selected
        check_run_agents(
            project_file,
            dict.fromkeys(t for t in chosen if t in known),
            agent_override=agent if agent in project_file.spec.agents else None,
        )
    return project_file.resolve(only=selected, agent_override=agent)


def resolve_project(
    path: str | os.PathLike[str], only: Iterable[str] | None = None, agent: str | None = None
) -> Project:
    """The project file at ``path`` read, checked and resolved as a run of ``only`` with
    ``agent`` would resolve it (nothing opened, nothing written)."""
    return _resolve(path, only, agent)


def _make_runner(project: Project, runner: str | None, ray_address: str | None) -> Runner:
    resources = {n: s.resources for n, s in project.agent_settings.items() if s.resources}
    return make_runner(
        runner or ("ray" if ray_address else project.runner),
        address=ray_address,
        resources=resources,
    )


def restart_scope(project: Project, only: Iterable[str] | None) -> frozenset[str] | None:
    """The tasks ``run --restart`` runs again from scratch: with ``only``, those tasks and every
    task that depends on them (directly or not); without it, ``None``: every task."""
    if not only:
        return None
    named = set(only)
    return frozenset(named | descendants(project.graph(), named))


def _preview(
    hashes: dict[str, str],
    dependencies: dict[str, list[str]],
    store: StateStore | None,
    name: str,
    restart: bool,
    scope: frozenset[str] | None = None,
) -> ResumePlan:
    """The resume plan over what ``store`` recorded (``None``: nothing recorded yet); a restart
    forgets what it restarts (``scope``; ``None``: everything)."""
    return _preview_records(hashes, dependencies, store, name, restart, scope)[0]


def _preview_records(
    hashes: dict[str, str],
    dependencies: dict[str, list[str]],
    store: StateStore | None,
    name: str,
    restart: bool,
    scope: frozenset[str] | None = None,
) -> tuple[ResumePlan, dict[str, SuccessRecord]]:
    """:func:`_preview`, with the recorded successes the plan skips."""
    if (restart and scope is None) or store is None:
        return plan_resume(hashes, dependencies, {}), {}
    records = store.snapshot(name).tasks
    succeeded = store.succeeded_tasks(name)
    held, kept = held_task_ids(records), kept_task_ids(records)
    if restart and scope is not None:
        succeeded = {t: r for t, r in succeeded.items() if t not in scope}
        held, kept = held - scope, kept - scope
    return plan_resume(hashes, dependencies, succeeded, held=held, kept=kept), succeeded


def preview_run(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
) -> ResumePlan:
    """The resume plan ``coditect run`` would follow now (``run --dry-run``), with the same
    checks and the same decisions as :meth:`ProjectSession.open` then :meth:`~ProjectSession.run`,
    and nothing written: the state is opened read-only, and not at all when it does not exist;
    no runner starts and no model is built. Linear in the number of tasks.

    Raises :class:`ProjectFileError`, :class:`RunnerError` and :class:`StateError` as
    :meth:`ProjectSession.open` does.
    """
    return preview_run_records(
        path,
        state=state,
        only=only,
        agent=agent,
        runner=runner,
        ray_address=ray_address,
        restart=restart,
    )[1]


def preview_run_records(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
) -> tuple[Project, ResumePlan, dict[str, SuccessRecord]]:
    """:func:`preview_run`, with the project it read and the recorded successes the plan
    skips (their outputs reach their dependents; the cost forecast reads them)."""
    with paused_gc():  # a few objects per task, none in a cycle
        return _preview_run(path, state, only, agent, runner, ray_address, restart)


def _preview_run(
    path: str | os.PathLike[str],
    state: str | os.PathLike[str] | None,
    only: Iterable[str] | None,
    agent: str | None,
    runner: str | None,
    ray_address: str | None,
    restart: bool,
) -> tuple[Project, ResumePlan, dict[str, SuccessRecord]]:
    project = _resolve(path, only, agent)
    _make_runner(project, runner, ray_address)  # an unknown runner is refused as a run would
    chosen = set(project.selected)
    tasks = [t for t in project.tasks if t.task_id in chosen]
    default = project.defaults.agent
    hashes = {t.task_id: agent_task_hash(t, project.agents, default) for t in tasks}
    dependencies = {t.task_id: t.dependencies for t in tasks}
    db = state_path_for(path, state)
    scope = restart_scope(project, only)
    if (restart and scope is None) or not db.exists():
        return project, *_preview_records(hashes, dependencies, None, project.name, restart)
    with StateStore.open(db, readonly=True) as store:
        return project, *_preview_records(hashes, dependencies, store, project.name, restart, scope)


def build_executor(project: Project) -> TaskExecutor:
    """The executor of ``project``: its agents with their limits, prices, fallback rule, and
    the tasks' timeouts (a task's own, else ``defaults.timeout``)."""
    settings = project.agent_settings
    timeouts = {t.task_id: project.timeout_for(t.task_id) for t in project.tasks}
    return TaskExecutor(
        project.agents,
        default_agent=project.defaults.agent,
        limits={
            name: AgentLimits(s.requests_per_minute, s.tokens_per_minute, s.max_concurrency)
            for name, s in settings.items()
        },
        prices=PriceBook(
            {name: Price(s.price.input, s.price.output) for name, s in settings.items() if s.price}
        ),
        fallback_on={name: s.fallback_on for name, s in settings.items()},
        on_truncated={name: s.on_truncated for name, s in settings.items()},
        task_timeouts={tid: t for tid, t in timeouts.items() if t is not None},
        cache={name: s.cache for name, s in settings.items() if s.cache is not None},
        workspace=project.workspace,
        mcp_servers=project.mcp_factories(),
    )


def run_budget(
    project: Project, max_cost_usd: float | None = None, max_tokens: int | None = None
) -> Budget | None:
    """The run's budget: the file's ``budget``, each limit overridden when given here."""
    spec = project.budget
    budget = Budget(
        max_cost_usd if max_cost_usd is not None else (spec.max_cost_usd if spec else None),
        max_tokens if max_tokens is not None else (spec.max_tokens if spec else None),
    )
    return budget if budget.active else None


def budget_options(budget: Budget) -> dict[str, Any]:
    """A budget as the run's recorded options."""
    return {"max_cost_usd": budget.max_cost_usd, "max_tokens": budget.max_tokens}


@dataclass
class RunOutcome:
    """What one run did: the resume plan it followed, and the summary of the run.
    ``recorded`` is false for a run that did nothing (every task done already): the store
    keeps no run ``run_id`` then."""

    run_id: int
    plan: ResumePlan
    summary: RunSummary
    skipped: list[str] = field(default_factory=list)
    recorded: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "recorded": self.recorded,
            "skipped": self.skipped,
            "ran": list(self.plan.run),
            "reasons": dict(self.plan.reasons),
            **self.summary.to_dict(),
        }


class ProjectSession:
    """One project, its store and its orchestrator. Open with :meth:`open`; close when done."""

    def __init__(
        self,
        project: Project,
        store: StateStore,
        orchestrator: ProjectOrchestrator,
        *,
        only: Iterable[str] | None = None,
    ) -> None:
        self.project = project
        self.store = store
        self.orchestrator = orchestrator
        self.restart_scope = restart_scope(project, only)
        """What ``run(restart=True)`` runs again from scratch (``None``: every task)."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        state: str | os.PathLike[str] | None = None,
        only: Iterable[str] | None = None,
        agent: str | None = None,
        runner: str | None = None,
        ray_address: str | None = None,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
    ) -> ProjectSession:
        """Load ``path`` and open its store. Raises :class:`ProjectFileError` (nothing written)
        for a bad file, :class:`AgentError` (nothing written) naming every agent the selected
        tasks can reach (their fallbacks and reviewers included) that could not be used (no
        API key, SDK not installed, model file or command missing: as ``coditect doctor`` finds
        offline), :class:`StateError` for an unusable state database.

        ``only`` selects tasks; their dependencies come along (those that already succeeded
        are skipped by the resume plan). ``agent`` runs every selected task on that agent.
        ``runner`` (``"local"`` or ``"ray"``; default: the file's ``runner:``) says where the
        calls run; ``ray_address`` is the Ray cluster (default: ``RAY_ADDRESS``, else a new
        local Ray) and implies ``runner="ray"``; a cluster that cannot be reached, refuses this
        driver or runs another Ray raises :class:`RunnerError` here, before the store is opened.
        ``max_cost_usd`` and ``max_tokens`` override the file's ``budget``.
        """
        project = _resolve(path, only, agent, check_agents=True)
        # Before the store: an unknown runner writes nothing, and neither does a cluster that
        # cannot be reached or refuses this driver.
        calls_run_on = _make_runner(project, runner, ray_address)
        calls_run_on.check()
        store = StateStore.open(state_path_for(path, state), keep_backups=project.keep_backups)
        try:
            for config in project.agents.list():
                store.add_secrets(config.api_key)
            orchestrator = ProjectOrchestrator(
                project.agents,
                build_executor(project),
                name=project.name,
                default_agent=project.defaults.agent,
                runner=calls_run_on,
                budget=run_budget(project, max_cost_usd, max_tokens),
            )
            chosen = set(project.selected)
            orchestrator.add_tasks(t for t in project.tasks if t.task_id in chosen)
        except BaseException:
            store.close()
            raise
        return cls(project, store, orchestrator, only=only)

    async def run(
        self,
        *,
        max_concurrency: int | None = None,
        restart: bool = False,
        fail_fast: bool = False,
        on_plan: Callable[[ResumePlan], None] | None = None,
        cache: bool = False,
        replay: int | None = None,
    ) -> RunOutcome:
        """Run what the resume plan says must run; record everything in the store, every
        request in the call journal (:mod:`coditect_core.orchestration.journal`).

        ``restart`` runs again from scratch every task, or, when the session was opened with
        ``only``, those tasks and every task that depends on them (:func:`restart_scope`): the
        others keep what they recorded; the state is backed up first (``coditect state
        restore`` brings it back). ``on_plan(plan)`` is called with the plan the run follows,
        before any task starts. ``cache`` (``--cache``): the journal answers a request it has
        seen, for agents whose temperature is 0 or unset (an agent's ``cache:`` decides for
        itself). ``replay`` (a run id of this project): the run restarts as with ``restart``,
        each request answered from the journal as of that run, none sent; a request not there
        fails its task.
        Raises :class:`RunLockedError` if another live process is running this project,
        :class:`RunnerError` if the runner cannot start (no Ray cluster to reach),
        :class:`StateError` for a ``replay`` run this project does not have.
        """
        orchestrator, store = self.orchestrator, self.store
        concurrency = max_concurrency or self.project.defaults.max_concurrency
        if replay is not None:
            self.check_replay(replay)
            restart = True
        if restart and not store.in_memory and store.path.exists():
            # what the restart resets stays at hand (coditect state restore)
            await asyncio.to_thread(
                backup_state, store.path, reason="restart", keep=self.project.keep_backups
            )
        scope = self.restart_scope if restart else None
        await orchestrator.runner.start(orchestrator.executor)  # e.g. Ray: connect, warm up
        info = await store.begin_run(
            orchestrator.name,
            options={
                "max_concurrency": concurrency,
                "restart": restart,
                **({"restart_only": sorted(scope)} if scope is not None else {}),
                "fail_fast": fail_fast,
                **({"cache": True} if cache else {}),
                **({"replay": replay} if replay is not None else {}),
                **({"budget": budget_options(orchestrator.budget)} if orchestrator.budget else {}),
                "prices": price_data_version(),  # what this run's calls are priced with
            },
            restart=restart and scope is None,
        )
        status = "error"
        recorded = True
        try:
            observer = StoreObserver(store, info.run_id)
            orchestrator.executor.journal = await store.run_journal(
                info.run_id, replay_of=replay
            ).open()
            orchestrator.executor.run_cache = cache
            hashes = await observer.define(orchestrator)
            for tid in sorted(scope or ()):
                await store.set_task_status(
                    info.run_id, tid, TaskStatus.PENDING, note="restart: runs again from scratch"
                )
            succeeded = await store.load_succeeded(orchestrator.name)
            plan = self._plan(hashes, succeeded)
            self._restore(plan, succeeded)
            if not restart:  # agent loops a killed run left unfinished go on where they were
                orchestrator.executor.loop_resumes = await store.load_loops(
                    orchestrator.name, plan.run
                )
            if on_plan is not None:
                on_plan(plan)
            orchestrator.add_observer(observer)
            summary = await orchestrator.run(concurrency, fail_fast=fail_fast)
            status = run_status(summary)
        except BaseException:
            status = "interrupted"
            raise
        finally:
            orchestrator.executor.journal, orchestrator.executor.run_cache = None, False
            orchestrator.executor.loop_resumes = {}
            # A run that did nothing (every task done already) leaves no run in the record.
            recorded = await store.finish_run(info.run_id, status, drop_if_empty=True)
        return RunOutcome(info.run_id, plan, summary, skipped=list(plan.skip), recorded=recorded)

    def check_replay(self, run_id: int) -> None:
        """Raise :class:`StateError` unless run ``run_id`` is one of this project's."""
        name = self.orchestrator.name
        if run_id not in {r.run_id for r in self.store.runs(name)}:
            raise StateError(
                f"--replay {run_id}: project {name!r} has no run {run_id} in its state "
                "(see `coditect status`); nothing was run"
            )

    def preview(self, *, restart: bool = False) -> ResumePlan:
        """The resume plan a run would follow now, without running or writing anything (but
        the session has opened its store: :func:`preview_run` does not even that)."""
        orchestrator = self.orchestrator
        registry, default = orchestrator.registry, orchestrator.executor.default_agent
        hashes = {
            tid: agent_task_hash(task, registry, default)
            for tid, task in orchestrator.tasks.items()
        }
        return _preview(
            hashes,
            self._dependencies(),
            self.store,
            orchestrator.name,
            restart,
            self.restart_scope,
        )

    def _dependencies(self) -> dict[str, list[str]]:
        return {tid: task.dependencies for tid, task in self.orchestrator.tasks.items()}

    def _plan(self, hashes: dict[str, str], succeeded: dict[str, SuccessRecord]) -> ResumePlan:
        """The resume plan over the store's records (a restart has reset them already)."""
        records = self.store.snapshot(self.orchestrator.name).tasks
        held, kept = held_task_ids(records), kept_task_ids(records)
        plan = plan_resume(hashes, self._dependencies(), succeeded, held=held, kept=kept)
        for tid in plan.run:
            logger.info("%s runs: %s", tid, plan.reasons.get(tid, ""))
        return plan

    def _restore(self, plan: ResumePlan, succeeded: dict[str, SuccessRecord]) -> None:
        """Put the recorded state on the board: skipped tasks completed (their outputs reach
        their dependents), held tasks cancelled (their dependents blocked)."""
        board = self.orchestrator.board
        for tid in plan.skip:
            task = board.get(tid)
            result = ExecutionResult(
                task_id=tid,
                agent=task.agent,
                status=ExecutionStatus.SUCCESS,
                output=succeeded[tid].output,
                value=succeeded[tid].value,
                metadata={"resumed": True},
            )
            board.restore(tid, TaskStatus.COMPLETED, result=result)
        for tid in plan.held:
            board.restore(tid, TaskStatus.CANCELLED, held=True)

    async def aclose(self) -> None:
        """Close the models' clients and the store."""
        try:
            await self.orchestrator.aclose()
        finally:
            await self.store.aclose()

    async def __aenter__(self) -> ProjectSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

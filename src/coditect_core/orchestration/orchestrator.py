"""``ProjectOrchestrator``: a project's tasks, run on its agents, in dependency order, in parallel.

It owns the tasks and their latest results (in memory), a :class:`TaskExecutor` for the calls,
and the run loop (:mod:`.run_loop`). Every status change of every task goes through one method,
:meth:`ProjectOrchestrator._transition`, which awaits the observers
(:class:`~coditect_core.orchestration.observer.OrchestratorObserver`): that is where a durable
store plugs in, without touching :meth:`ProjectOrchestrator.run`.

A run starts by resetting what an earlier run left unfinished (failed, blocked, interrupted or
stale in-progress tasks go back to pending); tasks cancelled or completed by hand stay so.
When a run is cancelled, the calls in flight are cancelled and their tasks recorded as
CANCELLED (interrupted, so the next run takes them again); tasks never started stay PENDING.

Every attempt of every task (a retry or a fallback is an attempt too) is counted in
:attr:`ProjectOrchestrator.spend` (tokens and cost, by task and agent) and reaches the observers
(``attempt_started`` before a further attempt goes out). With a :class:`~.budget.Budget`, a run
that reaches it starts no new task, lets the calls in flight finish, and ends with
``stop_reason == "budget"`` and the unstarted tasks still PENDING.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from ..errors import AgentError, SchedulingError
from .agent_registry import AgentConfig, AgentRegistry
from .calls import ATTEMPT_HOOK
from .executor import ExecutionResult, ExecutionStatus, TaskExecutor
from .gc_tuning import DEFAULT_GC_THRESHOLD, fewer_collections
from .manual import INTERRUPTED, ManualActions
from .observer import OrchestratorObserver
from .prompts import UpstreamOutput
from .run_loop import RunLoop
from .runners.base import Runner
from .runners.local import LocalRunner
from .scheduler import all_in, ready_tasks, validate_graph, validate_tasks
from .spend import Budget, Spend
from .summary import RunSummary, build_report, total_usage
from .task import AgentTask, TaskStatus

__all__ = ["ProjectOrchestrator", "RunSummary"]

logger = logging.getLogger(__name__)

_TASK_STATUS = {
    ExecutionStatus.SUCCESS: TaskStatus.COMPLETED,
    ExecutionStatus.FAILED: TaskStatus.FAILED,
    ExecutionStatus.CANCELLED: TaskStatus.CANCELLED,
    ExecutionStatus.AWAITING_HUMAN: TaskStatus.AWAITING_HUMAN,
}
_NOTED = (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.CANCELLED, TaskStatus.AWAITING_HUMAN)
_FINAL = frozenset((TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED))
_PENDING = TaskStatus.PENDING
_STATUS = attrgetter("status")
_DEPENDENCIES = attrgetter("dependencies")


class ProjectOrchestrator(ManualActions):
    """Tasks, agents and runs of one project.

    ``results`` maps a task id to its latest :class:`ExecutionResult`; a store restoring a
    project fills it (with ``tasks``) before :meth:`run`, so that completed tasks are skipped
    and their outputs reach their dependents. ``budget`` limits each run; ``spend`` is what the
    current (or last) run spent. During :meth:`run` the garbage collector's young generation is
    collected less often (``gc_threshold``, see :mod:`.gc_tuning`; ``None`` leaves it alone).
    """

    def __init__(
        self,
        registry: AgentRegistry | None = None,
        executor: TaskExecutor | None = None,
        *,
        name: str = "project",
        default_agent: str | None = None,
        observers: Iterable[OrchestratorObserver] = (),
        runner: Runner | None = None,
        budget: Budget | None = None,
        gc_threshold: int | None = DEFAULT_GC_THRESHOLD,
    ) -> None:
        if registry is None:
            registry = executor.registry if executor is not None else AgentRegistry()
        self.name = name
        self.registry = registry
        self.executor = executor or TaskExecutor(registry, default_agent=default_agent)
        self.runner = runner or LocalRunner()  # where calls execute (runners/: local, ray)
        self.budget = budget
        self.gc_threshold = gc_threshold  # during run(): see gc_tuning (None: GC untouched)
        self.spend = Spend()
        self._attempt_hook = self._next_attempt  # bound once: it is set around every call
        self.tasks: dict[str, AgentTask] = {}
        self.results: dict[str, ExecutionResult] = {}
        self._observers: list[OrchestratorObserver] = list(observers)
        self._run: RunLoop | None = None
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requests: set[str] = set()

    # ------------------------------------------------------------------ tasks

    def add_observer(self, observer: OrchestratorObserver) -> None:
        """Send every later event to ``observer`` too."""
        self._observers.append(observer)

    def add_task(self, task: AgentTask) -> AgentTask:
        """Add ``task``; a duplicate id is refused. Dependencies are checked when run."""
        if task.task_id in self.tasks:
            raise SchedulingError(f"duplicate task id {task.task_id!r}")
        if self._run is not None:
            raise SchedulingError("tasks cannot be added while a run is active")
        self.tasks[task.task_id] = task
        return task

    def add_tasks(self, tasks: Iterable[AgentTask]) -> list[AgentTask]:
        """Add several tasks; nothing is added if one id is a duplicate."""
        tasks = list(tasks)
        seen = set(self.tasks)
        for task in tasks:
            if task.task_id in seen:
                raise SchedulingError(f"duplicate task id {task.task_id!r}")
            seen.add(task.task_id)
        return [self.add_task(task) for task in tasks]

    def get_task(self, task_id: str) -> AgentTask:
        """The task ``task_id``; :class:`SchedulingError` if there is none."""
        try:
            return self.tasks[task_id]
        except KeyError:
            raise SchedulingError(f"unknown task {task_id!r}") from None

    def get_result(self, task_id: str) -> ExecutionResult | None:
        """The latest result of ``task_id``, if it ran."""
        return self.results.get(task_id)

    def get_ready_tasks(self) -> list[AgentTask]:
        """Pending tasks whose dependencies all completed, most urgent first."""
        return ready_tasks(list(self.tasks.values()))

    def validate(self) -> list[str]:
        """Check the graph (duplicates, unknown dependencies, cycles); its topological order."""
        return validate_tasks(list(self.tasks.values()))

    # ------------------------------------------------------------------ transitions

    async def _transition(
        self,
        task: AgentTask,
        new: TaskStatus,
        *,
        reason: str | None = None,
        result: ExecutionResult | None = None,
        agent: str | None = None,
        model: str | None = None,
        interface: str | None = None,
    ) -> None:
        """The one place a task's status changes: update the task, then tell the observers.

        To IN_PROGRESS: ``task_started`` (with ``agent``/``model``/``interface``). With a
        ``result``: ``attempt_finished``. Otherwise: ``task_status_changed``.
        """
        old = self._set_status(task, new, reason, result)
        if self._observers:
            await self._notify(task, old, new, reason, result, agent, model, interface)

    def _set_status(
        self,
        task: AgentTask,
        new: TaskStatus,
        reason: str | None,
        result: ExecutionResult | None,
    ) -> TaskStatus:
        """The task side of :meth:`_transition` (no observers: no coroutine); the old status."""
        old = task.status
        task.status = new
        if new is TaskStatus.IN_PROGRESS:
            task.started_at = datetime.now(UTC)
            task.completed_at = None
        elif new in _FINAL:
            task.completed_at = (result.completed_at if result else None) or datetime.now(UTC)
        if result is not None:
            self.results[task.task_id] = result
        if reason and new in _NOTED:
            task.notes.append(reason)
        return old

    async def _notify(
        self,
        task: AgentTask,
        old: TaskStatus,
        new: TaskStatus,
        reason: str | None,
        result: ExecutionResult | None,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> None:
        """The observer side of :meth:`_transition`."""
        for observer in self._observers:
            if new is TaskStatus.IN_PROGRESS:
                await observer.task_started(
                    task, previous=old, agent=agent, model=model, interface=interface
                )
            elif result is not None:
                await observer.attempt_finished(task, result, previous=old, reason=reason)
            else:
                await observer.task_status_changed(task, old, new, reason=reason)

    def _upstream(self, task: AgentTask) -> Sequence[UpstreamOutput]:
        if not task.dependencies:
            return ()
        out = []
        for dep in dict.fromkeys(task.dependencies):
            result = self.results.get(dep)
            if result is not None and result.output is not None:
                out.append(UpstreamOutput(dep, self.tasks[dep].title, result.output))
        return out

    async def _execute_and_record(
        self, task: AgentTask, agent: str | None, current: asyncio.Task[Any] | None = None
    ) -> ExecutionResult:
        """Run ``task`` once: record its start, execute it, record the result and new status.

        ``current``: the asyncio task running this (a run's worker knows it), else looked up.
        """
        tid = task.task_id
        name, model, interface = agent or task.agent or self.executor.default_agent, None, None
        if self._observers:  # only they need to know the agent before the call
            try:
                config = self.executor.resolve_agent(task, agent)
                name, model, interface = config.name, config.model, config.interface.value
            except AgentError:
                pass  # execute() turns it into a FAILED result with the same message
        upstream = self._upstream(task)
        if current is None:
            current = asyncio.current_task()
        if current is not None:
            self._inflight[tid] = current
        try:
            old = self._set_status(task, TaskStatus.IN_PROGRESS, None, None)
            if self._observers:  # (the transition inline: this is every task's path)
                await self._notify(
                    task, old, TaskStatus.IN_PROGRESS, None, None, name, model, interface
                )
            if ATTEMPT_HOOK.get() is self._attempt_hook:  # a run's worker: set once, below
                result = await self.runner.execute(self.executor, task, agent, upstream=upstream)
            else:
                hook = ATTEMPT_HOOK.set(self._attempt_hook)  # retries, fallbacks: live...
                try:
                    result = await self.runner.execute(
                        self.executor, task, agent, upstream=upstream
                    )
                finally:
                    ATTEMPT_HOOK.reset(hook)
            earlier = result.metadata.pop("earlier_attempts", None)
            if earlier:  # ...unless the call ran elsewhere (another process): then after it
                await self._replay_attempts(task, earlier, result)
        except asyncio.CancelledError:
            by_user = tid in self._cancel_requests
            self._cancel_requests.discard(tid)
            if not by_user and task.status is not TaskStatus.IN_PROGRESS:
                raise  # interrupted before it started: it stays as it was
            reason = "cancelled by user" if by_user else "interrupted: the run was cancelled"
            result = ExecutionResult(
                tid,
                agent=name,
                status=ExecutionStatus.CANCELLED,
                started_at=task.started_at,
                completed_at=datetime.now(UTC),
                error=reason,
                model=model,
                metadata={"cost": None},
            )
            if not by_user:
                task.metadata[INTERRUPTED] = True
            self.spend.record(tid, name, None, None)  # it may have been billed: cost unknown
            await self._transition(task, TaskStatus.CANCELLED, reason=reason, result=result)
            if not by_user:
                raise
            if current is not None:
                current.uncancel()
            return result
        finally:
            self._inflight.pop(tid, None)
        self.spend.record(tid, result.agent, result.usage, result.metadata.get("cost"))
        new = _TASK_STATUS.get(result.status, TaskStatus.FAILED)
        reason = None
        if new is TaskStatus.FAILED:
            reason = f"failed: {result.error}"
        elif new is TaskStatus.AWAITING_HUMAN:
            reason = "handed to a person: waiting to be completed by hand"
        old = self._set_status(task, new, reason, result)
        if self._observers:
            await self._notify(task, old, new, reason, result, None, None, None)
        return result

    async def _next_attempt(
        self, task: AgentTask, ended: ExecutionResult, agent: AgentConfig
    ) -> None:
        """An attempt of ``task`` ended (``ended``); ``agent`` makes the next one, now."""
        self.spend.record_earlier(
            task.task_id, ended.agent, ended.usage, ended.metadata.get("cost")
        )
        for observer in self._observers:
            await observer.attempt_started(
                task,
                ended,
                agent=agent.name,
                model=agent.model,
                interface=agent.interface.value,
            )

    async def _replay_attempts(
        self, task: AgentTask, earlier: list[dict[str, Any]], result: ExecutionResult
    ) -> None:
        """Record the attempts a call run elsewhere made before its last one, in order."""
        ended = [ExecutionResult.from_dict(item) for item in earlier]
        following = [*(e.agent for e in ended[1:]), result.agent]
        for item, name in zip(ended, following, strict=True):
            try:
                agent = self.registry.get(name or "")
            except AgentError:
                agent = AgentConfig(name or "?", "custom", provider="unknown")
            await self._next_attempt(task, item, agent)

    # ------------------------------------------------------------------ single tasks

    async def execute_task(self, task_id: str, agent: str | None = None) -> ExecutionResult:
        """Execute one task now (the plan's step 4.4) and record the result on it.

        Its dependencies must have completed; ``agent`` overrides the task's agent.
        """
        task = self.get_task(task_id)
        if task.status is TaskStatus.IN_PROGRESS:
            raise SchedulingError(f"task {task_id!r} is already in progress")
        unmet = []
        for dep in task.dependencies:
            if dep not in self.tasks:
                raise SchedulingError(f"task {task_id!r} depends on unknown task {dep!r}")
            if self.tasks[dep].status is not TaskStatus.COMPLETED:
                unmet.append(f"{dep} ({self.tasks[dep].status.value})")
        if unmet:
            raise SchedulingError(
                f"task {task_id!r} cannot start: dependencies not completed: {', '.join(unmet)}"
            )
        result = await self._execute_and_record(task, agent)
        if self._run is not None:
            await self._run.settle(task_id)
            self._run.fill()
        return result

    # ------------------------------------------------------------------ runs

    async def _prepare_run(self) -> None:
        resets = {
            TaskStatus.IN_PROGRESS: "reset: was in progress when an earlier run stopped",
            TaskStatus.FAILED: "reset: failed in an earlier run, trying again",
            TaskStatus.BLOCKED: "reset: blocked in an earlier run, checking again",
        }
        done = TaskStatus.COMPLETED
        if all_in(self.tasks.values(), _PENDING, done):
            return  # nothing left unfinished (a fresh project, or one run to the end)
        stale = [t for t in self.tasks.values() if t.status not in (_PENDING, done)]
        for task in stale:
            reason = resets.get(task.status)
            if task.status is TaskStatus.CANCELLED and task.metadata.pop(INTERRUPTED, False):
                reason = "reset: interrupted in an earlier run"
            if reason is not None:
                await self._transition(task, TaskStatus.PENDING, reason=reason)

    async def run(self, max_concurrency: int = 4, fail_fast: bool = False) -> RunSummary:
        """Run every task that is not done, as soon as its dependencies have completed.

        Higher priority first among ready tasks, at most ``max_concurrency`` at once. The
        dependents of a failed task are BLOCKED and everything else still runs; with
        ``fail_fast`` the first failure cancels the calls in flight and starts nothing more.
        Raises :class:`SchedulingError` (before anything runs) for a bad graph. Cancelling the
        run cancels the calls in flight and leaves every task in a truthful state.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if self._run is not None:
            raise SchedulingError("a run is already active on this orchestrator")
        # Ids are unique (add_task refuses duplicates); the lists are only read.
        graph = dict(zip(self.tasks, map(_DEPENDENCIES, self.tasks.values()), strict=True))
        order = validate_graph(graph)
        started, clock = datetime.now(UTC), time.monotonic()
        self.spend = Spend()
        loop = RunLoop(self, graph, order, max_concurrency, fail_fast)
        self._run = loop
        with fewer_collections(self.gc_threshold):
            return await self._run_loop(loop, started, clock, max_concurrency, fail_fast)

    async def _run_loop(
        self, loop: RunLoop, started: datetime, clock: float, max_concurrency: int, fail_fast: bool
    ) -> RunSummary:
        cancelled = False
        try:
            await self._prepare_run()
            if type(self.runner) is LocalRunner:  # SDK imports before any call is in flight
                tasks = self.tasks.values()
                pending = (
                    tasks if all_in(tasks, _PENDING) else [t for t in tasks if t.status is _PENDING]
                )
                self.executor.warm_up(pending)
            for observer in self._observers:
                await observer.run_started(
                    self, max_concurrency=max_concurrency, fail_fast=fail_fast
                )
            await loop.start()
            await loop.done
        except asyncio.CancelledError:
            cancelled = True
            loop.stop("cancelled", cancel=True)
            await loop.drain()
            raise
        except BaseException as error:
            loop.error = loop.error or error
            loop.stop("error", cancel=True)
            await loop.drain()
            raise
        finally:
            self._run = None
            summary = self._summary(started, clock, loop, cancelled)
            for observer in self._observers:
                await observer.run_finished(self, summary)
        if loop.error is not None:
            raise loop.error
        if logger.isEnabledFor(logging.INFO):
            logger.info("run of %s finished: %s", self.name, summary.counts)
        return summary

    def _summary(
        self, started: datetime, clock: float, loop: RunLoop, cancelled: bool
    ) -> RunSummary:
        return RunSummary(
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_seconds=time.monotonic() - clock,
            statuses=dict(zip(self.tasks, map(_STATUS, self.tasks.values()), strict=True)),
            cancelled=cancelled,
            stop_reason=loop.stop_reason,
            error=repr(loop.error) if loop.error is not None else None,
            usage=self._usage(),
            cost=self.spend.to_dict(),
            budget=self.budget.describe(self.spend) if self.budget is not None else None,
        )

    def _usage(self) -> dict[str, int]:
        return total_usage(self.results)

    # ------------------------------------------------------------------ reporting

    def generate_report(self) -> dict[str, Any]:
        """A JSON-ready picture of the project: counts, progress, usage and every task."""
        return build_report(self.name, self.tasks, self.results, self.spend)

    # ------------------------------------------------------------------ lifetime

    async def aclose(self) -> None:
        """Close the executor's LLM clients, then the runner."""
        try:
            await self.executor.aclose()
        finally:
            await self.runner.aclose()

    async def __aenter__(self) -> ProjectOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

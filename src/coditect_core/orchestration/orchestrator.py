"""``ProjectOrchestrator``: a project's tasks, run on its agents, in dependency order, in parallel.

The plan's name for the whole, kept as a thin facade over three parts:

* :class:`~.board.TaskBoard` (``board``): the tasks, their results, the one transition every
  status change goes through, the observers (a durable store plugs in there), the by-hand
  actions;
* :class:`~.executor.TaskExecutor` (``executor``): runs one task on its agent, and the agent's
  runner (``runner``: this process, or Ray) places its requests;
* :class:`~.run_loop.RunLoop`: one :meth:`ProjectOrchestrator.run` over the board.

A run starts by resetting what an earlier run left unfinished (failed, blocked, interrupted or
stale in-progress tasks go back to pending); tasks completed, or cancelled by hand, stay so.
When a run is cancelled, the calls in flight are cancelled and their tasks recorded as
CANCELLED (interrupted, so the next run takes them again); tasks never started stay PENDING.

Every attempt of every task (a retry or a fallback is an attempt too) is counted in
:attr:`ProjectOrchestrator.spend` and reaches the observers. With a :class:`~.spend.Budget`, a
run that reaches it starts no new task, lets the calls in flight finish, and ends with
``stop_reason == "budget"`` and the unstarted tasks still PENDING.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..errors import AgentError, SchedulingError
from .agent_registry import AgentConfig, AgentRegistry
from .board import TaskBoard
from .execution_result import ExecutionResult
from .executor import TaskExecutor
from .observer import OrchestratorObserver
from .run_loop import RunLoop
from .runners.base import Runner
from .scheduler import validate_graph
from .spend import Budget, BudgetGuard, Spend
from .summary import RunSummary, project_report, total_usage
from .task import AgentTask, TaskStatus

__all__ = ["ProjectOrchestrator", "RunSummary"]

logger = logging.getLogger(__name__)


class ProjectOrchestrator:
    """Tasks, agents and runs of one project.

    ``results`` maps a task id to its latest :class:`ExecutionResult`; a store restoring a
    project fills the board (:meth:`TaskBoard.restore`) before :meth:`run`, so that completed
    tasks are skipped and their outputs reach their dependents. ``budget`` limits each run;
    ``spend`` is what the current (or last) run spent. ``runner`` places the agents' requests
    (it becomes the executor's).
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
    ) -> None:
        if executor is None:
            executor = TaskExecutor(registry, default_agent=default_agent, runner=runner)
        elif runner is not None:
            executor.runner = runner
        self.name = name
        self.executor = executor
        self.registry = executor.registry
        self.board = TaskBoard(observers)
        self.budget = budget
        self._run: RunLoop | None = None

    # ------------------------------------------------------------------ the parts

    @property
    def tasks(self) -> dict[str, AgentTask]:
        return self.board.tasks

    @property
    def results(self) -> dict[str, ExecutionResult]:
        return self.board.results

    @property
    def spend(self) -> Spend:
        return self.board.spend

    @property
    def runner(self) -> Runner:
        return self.executor.runner

    def add_observer(self, observer: OrchestratorObserver) -> None:
        """Send every later event to ``observer`` too."""
        self.board.observers.append(observer)

    # ------------------------------------------------------------------ tasks

    def add_task(self, task: AgentTask) -> AgentTask:
        """Add ``task``; a duplicate id is refused. Dependencies are checked when run."""
        return self.board.add(task)

    def add_tasks(self, tasks: Iterable[AgentTask]) -> list[AgentTask]:
        """Add several tasks; nothing is added if one id is a duplicate."""
        tasks = list(tasks)
        seen = set(self.tasks)
        for task in tasks:
            if task.task_id in seen:
                raise SchedulingError(f"duplicate task id {task.task_id!r}")
            seen.add(task.task_id)
        return [self.board.add(task) for task in tasks]

    def get_task(self, task_id: str) -> AgentTask:
        """The task ``task_id``; :class:`SchedulingError` if there is none."""
        return self.board.get(task_id)

    def get_result(self, task_id: str) -> ExecutionResult | None:
        """The latest result of ``task_id``, if it ran."""
        return self.results.get(task_id)

    def get_ready_tasks(self) -> list[AgentTask]:
        """Pending tasks whose dependencies all completed, most urgent first."""
        return self.board.ready()

    def validate(self) -> list[str]:
        """Check the graph (duplicates, unknown dependencies, cycles); its topological order."""
        return self.board.validate()

    # ------------------------------------------------------------------ executions

    async def _execute(self, task: AgentTask, agent: str | None = None) -> ExecutionResult:
        """Execute ``task`` once on its agent (or ``agent``), recorded on the board."""
        chosen: AgentConfig | str | None
        try:
            chosen = self.executor.resolve_agent(task, agent)
        except AgentError:
            chosen = agent  # the execution fails, and says why
        known = chosen if isinstance(chosen, AgentConfig) else None
        return await self.board.run_task(
            task,
            lambda upstream, on_attempt: self.executor.execute(
                task,
                chosen,
                upstream=upstream,
                on_attempt=on_attempt,
                on_wait=self.board.retry_waiting,
                on_tool=self.board.tool_called,
            ),
            agent=known.name if known else agent or task.agent or self.executor.default_agent,
            model=known.model if known else None,
            interface=known.interface.value if known else None,
        )

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
        result = await self._execute(task, agent)
        if self.board.watcher is not None:
            await self.board.watcher.changed(task_id)
        return result

    async def complete_task(
        self, task_id: str, output: str | None = None, *, note: str | None = None
    ) -> ExecutionResult:
        """Mark a task done by hand (:meth:`TaskBoard.complete`)."""
        return await self.board.complete(task_id, output, note=note)

    async def fail_task(self, task_id: str, error: str = "failed by hand") -> ExecutionResult:
        """Mark a task failed by hand (:meth:`TaskBoard.fail`)."""
        return await self.board.fail(task_id, error)

    async def cancel_task(self, task_id: str, reason: str = "cancelled by user") -> None:
        """Cancel a task and hold it (:meth:`TaskBoard.cancel`)."""
        await self.board.cancel(task_id, reason)

    # ------------------------------------------------------------------ runs

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
        tasks = self.board.tasks
        graph = {tid: task.dependencies for tid, task in tasks.items()}
        order = validate_graph(graph)
        started, clock = datetime.now(UTC), time.monotonic()
        self.board.spend = Spend()
        guard = None
        if self.budget is not None and self.budget.active:
            guard = BudgetGuard(self.budget, lambda: self.board.spend)
        self.executor.budget_guard = guard
        loop = RunLoop(
            self.board,
            self._execute,
            graph,
            order,
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
            budget=self.budget,
            guard=guard,
        )
        self._run = self.board.watcher = loop
        cancelled = False
        try:
            await self.board.prepare_run()
            await self.runner.start(self.executor)  # e.g. Ray: connect, warm the workers up
            self.executor.warm_up(t for t in tasks.values() if t.status is TaskStatus.PENDING)
            for observer in self.board.observers:
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
            self._run = self.board.watcher = None
            self.executor.budget_guard = None
            summary = self._summary(started, clock, loop, cancelled)
            for observer in self.board.observers:
                await observer.run_finished(self, summary)
        if loop.error is not None:
            raise loop.error
        logger.info("run of %s finished: %s", self.name, summary.counts)
        return summary

    def _summary(
        self, started: datetime, clock: float, loop: RunLoop, cancelled: bool
    ) -> RunSummary:
        return RunSummary(
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_seconds=time.monotonic() - clock,
            statuses={tid: task.status for tid, task in self.board.tasks.items()},
            cancelled=cancelled,
            stop_reason=loop.stop_reason,
            error=repr(loop.error) if loop.error is not None else None,
            usage=total_usage(self.board.results),
            cost=self.board.spend.to_dict(),
            budget=self.budget.describe(self.board.spend) if self.budget is not None else None,
        )

    # ------------------------------------------------------------------ reporting

    def generate_report(self) -> dict[str, Any]:
        """A JSON-ready picture of the project: counts, progress, usage and every task."""
        return project_report(self.name, self.tasks, self.results, self.spend)

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

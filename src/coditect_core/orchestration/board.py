"""``TaskBoard``: the one task state machine. A project's tasks, their results, and every change.

The board owns the tasks and their latest results, what the current run spent, the executions
in flight, and the observers. Every status change of every task passes through one method,
:meth:`TaskBoard.transition`, which updates the task and then awaits the observers
(:class:`~.observer.OrchestratorObserver`; a durable store is one), in order::

    pending ──> in_progress ──> completed | failed | cancelled | awaiting_human
       │  ^                                   │
       │  └──── reset (a new run, by hand) ───┘
       └──> blocked (a dependency failed)      completed / failed / cancelled by hand

A run executes tasks through :meth:`TaskBoard.run_task`; a person acts through
:meth:`~TaskBoard.complete`, :meth:`~TaskBoard.fail`, :meth:`~TaskBoard.cancel` and
:meth:`~TaskBoard.reset`; a store restoring a project's recorded state uses
:meth:`~TaskBoard.restore`. A run in progress watches the board (:class:`Watcher`) to release or
block the dependents of a task changed by hand. Nothing else writes a task's status.

A task cancelled because its run was (interrupted) is taken again by the next run; a task
cancelled by hand is *held*: it stays cancelled, and its dependents blocked, until it is reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import SchedulingError
from .agent_registry import AgentConfig
from .attempts import AttemptHook
from .execution_result import ExecutionResult, ExecutionStatus
from .observer import OrchestratorObserver
from .prompts import UpstreamOutput
from .scheduler import ready_tasks, validate_tasks
from .spend import Spend
from .task import AgentTask, TaskStatus

__all__ = ["Execute", "TaskBoard", "Watcher"]

logger = logging.getLogger(__name__)

Execute = Callable[[Sequence[UpstreamOutput], AttemptHook], Awaitable[ExecutionResult]]
"""``execute(upstream, on_attempt)``: one execution of a task, as the executor makes it."""

_TASK_STATUS = {
    ExecutionStatus.SUCCESS: TaskStatus.COMPLETED,
    ExecutionStatus.FAILED: TaskStatus.FAILED,
    ExecutionStatus.CANCELLED: TaskStatus.CANCELLED,
    ExecutionStatus.AWAITING_HUMAN: TaskStatus.AWAITING_HUMAN,
}
_NOTED = (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.CANCELLED, TaskStatus.AWAITING_HUMAN)
_RESETS = {
    TaskStatus.IN_PROGRESS: "reset: was in progress when an earlier run stopped",
    TaskStatus.FAILED: "reset: failed in an earlier run, trying again",
    TaskStatus.BLOCKED: "reset: blocked in an earlier run, checking again",
}


class Watcher(Protocol):
    """A run in progress: told when a task changed outside it (by hand, or executed alone)."""

    async def changed(self, task_id: str) -> None:
        """``task_id`` reached its status: release or block its dependents."""


class TaskBoard:
    """The tasks of one project and everything that happens to them."""

    def __init__(self, observers: Iterable[OrchestratorObserver] = ()) -> None:
        self.tasks: dict[str, AgentTask] = {}
        self.results: dict[str, ExecutionResult] = {}
        self.spend = Spend()
        """What the current (or last) run spent."""
        self.observers: list[OrchestratorObserver] = list(observers)
        self.held: set[str] = set()
        """Tasks cancelled by hand: they stay cancelled, run after run, until reset."""
        self.watcher: Watcher | None = None
        """The run in progress, if any."""
        self._interrupted: set[str] = set()  # cancelled because their run was
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requests: set[str] = set()

    # ------------------------------------------------------------------ tasks

    def add(self, task: AgentTask) -> AgentTask:
        """Add ``task``; a duplicate id, or any addition during a run, is refused."""
        if task.task_id in self.tasks:
            raise SchedulingError(f"duplicate task id {task.task_id!r}")
        if self.watcher is not None:
            raise SchedulingError("tasks cannot be added while a run is active")
        self.tasks[task.task_id] = task
        return task

    def get(self, task_id: str) -> AgentTask:
        """The task ``task_id``; :class:`SchedulingError` if there is none."""
        try:
            return self.tasks[task_id]
        except KeyError:
            raise SchedulingError(f"unknown task {task_id!r}") from None

    def ready(self) -> list[AgentTask]:
        """Pending tasks whose dependencies all completed, most urgent first."""
        return ready_tasks(list(self.tasks.values()))

    def validate(self) -> list[str]:
        """Check the graph (duplicates, unknown dependencies, cycles); its topological order."""
        return validate_tasks(list(self.tasks.values()))

    def upstream(self, task: AgentTask) -> list[UpstreamOutput]:
        """What ``task``'s dependencies produced, in the order it names them."""
        out = []
        for dep in dict.fromkeys(task.dependencies):
            result = self.results.get(dep)
            if result is not None and result.output is not None:
                title = self.tasks[dep].title
                out.append(UpstreamOutput(dep, title, result.output, value=result.value))
        return out

    # ------------------------------------------------------------------ the one transition

    async def transition(
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
        """Change ``task``'s status to ``new``, then tell the observers.

        To IN_PROGRESS: ``task_started`` (with ``agent``/``model``/``interface``). With a
        ``result`` (which becomes the task's latest): ``attempt_finished``. Otherwise:
        ``task_status_changed``. ``reason`` is noted on the task when it did not succeed.
        """
        old = task.status
        task.status = new
        if new is TaskStatus.IN_PROGRESS:
            task.started_at = datetime.now(UTC)
            task.completed_at = None
        elif new.is_final:
            task.completed_at = (result.completed_at if result else None) or datetime.now(UTC)
        if result is not None:
            self.results[task.task_id] = result
        if reason and new in _NOTED:
            task.notes.append(reason)
        for observer in self.observers:
            if new is TaskStatus.IN_PROGRESS:
                await observer.task_started(
                    task, previous=old, agent=agent, model=model, interface=interface
                )
            elif result is not None:
                await observer.attempt_finished(task, result, previous=old, reason=reason)
            else:
                await observer.task_status_changed(task, old, new, reason=reason)

    async def _attempt_started(
        self, task: AgentTask, ended: ExecutionResult, agent: AgentConfig
    ) -> None:
        """An attempt of ``task`` ended (``ended``); ``agent`` makes the next one, now."""
        self.spend.record(task.task_id, ended.agent, ended.usage, ended.cost_usd)
        for observer in self.observers:
            await observer.attempt_started(
                task, ended, agent=agent.name, model=agent.model, interface=agent.interface.value
            )

    async def tool_called(self, task: AgentTask, turn: int, call: dict[str, Any]) -> None:
        """A tool call of ``task``'s agent loop (its model turn ``turn``) ran: ``call``."""
        for observer in self.observers:
            await observer.tool_called(task, turn, call)

    async def retry_waiting(
        self, task: AgentTask, agent: AgentConfig, error: str, attempt: int, wait: float
    ) -> None:
        """A request of ``task`` on ``agent`` failed and is retried after ``wait`` seconds."""
        for observer in self.observers:
            await observer.retry_waiting(
                task, agent=agent.name, error=error, attempt=attempt, wait=wait
            )

    # ------------------------------------------------------------------ executions

    async def run_task(
        self,
        task: AgentTask,
        execute: Execute,
        *,
        agent: str | None = None,
        model: str | None = None,
        interface: str | None = None,
    ) -> ExecutionResult:
        """Execute ``task`` once and record it: in progress (before the call goes out), each
        further attempt, then the result and the status it leads to.

        ``agent``/``model``/``interface``: who is about to run it, for the observers.
        Cancelled by :meth:`cancel`, the task ends CANCELLED and this returns; cancelled because
        its run was, it ends CANCELLED (interrupted: the next run takes it again) and the
        cancellation goes on.
        """
        tid = task.task_id
        current = asyncio.current_task()
        if current is not None:
            self._inflight[tid] = current
        try:
            await self.transition(
                task, TaskStatus.IN_PROGRESS, agent=agent, model=model, interface=interface
            )
            result = await execute(self.upstream(task), self._attempt_started)
        except asyncio.CancelledError:
            by_user = tid in self._cancel_requests
            self._cancel_requests.discard(tid)
            if not by_user and task.status is not TaskStatus.IN_PROGRESS:
                raise  # interrupted before it started: it stays as it was
            reason = "cancelled by user" if by_user else "interrupted: the run was cancelled"
            result = ExecutionResult(
                tid,
                agent=agent,
                status=ExecutionStatus.CANCELLED,
                started_at=task.started_at,
                completed_at=datetime.now(UTC),
                error=reason,
                model=model,
                interface=interface,
                cost_usd=None,  # it may have been billed: unknown
            )
            if by_user:
                self.held.add(tid)
            else:
                self._interrupted.add(tid)
            self.spend.record(tid, agent, None, None)
            await self.transition(task, TaskStatus.CANCELLED, reason=reason, result=result)
            if not by_user:
                raise
            if current is not None:
                current.uncancel()
            return result
        finally:
            self._inflight.pop(tid, None)
        self.spend.record(tid, result.agent, result.usage, result.cost_usd)
        new = _TASK_STATUS.get(result.status, TaskStatus.FAILED)
        note: str | None = None
        if new is TaskStatus.FAILED:
            note = f"failed: {result.error}"
        elif new is TaskStatus.AWAITING_HUMAN:
            note = "handed to a person: waiting to be completed by hand"
        await self.transition(task, new, reason=note, result=result)
        return result

    async def prepare_run(self) -> None:
        """Before a run: what an earlier run left unfinished goes back to pending (failed,
        blocked, in progress, interrupted); tasks cancelled by hand stay held."""
        for task in self.tasks.values():
            reason = _RESETS.get(task.status)
            if task.status is TaskStatus.CANCELLED and task.task_id in self._interrupted:
                self._interrupted.discard(task.task_id)
                reason = "reset: interrupted in an earlier run"
            if reason is not None:
                await self.transition(task, TaskStatus.PENDING, reason=reason)

    def restore(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        result: ExecutionResult | None = None,
        held: bool = False,
    ) -> None:
        """Set ``task_id`` to the state a store recorded, before a run (no observer is told:
        this is no change, only what was already so). ``held``: cancelled by hand."""
        task = self.get(task_id)
        task.status = status
        if result is not None:
            self.results[task_id] = result
        if held:
            self.held.add(task_id)

    # ------------------------------------------------------------------ by hand

    def _check_by_hand(self, task: AgentTask, action: str, allowed: Sequence[TaskStatus]) -> None:
        if task.status is TaskStatus.IN_PROGRESS:
            raise SchedulingError(f"cannot {action} task {task.task_id!r}: it is in progress")
        if self.watcher is not None and task.status not in allowed:
            raise SchedulingError(
                f"cannot {action} task {task.task_id!r} while a run is active: "
                f"it is {task.status.value}"
            )

    async def _tell_watcher(self, task_id: str) -> None:
        if self.watcher is not None:
            await self.watcher.changed(task_id)

    async def complete(
        self, task_id: str, output: str | None = None, *, note: str | None = None
    ) -> ExecutionResult:
        """Mark a task done by hand (e.g. one a person finished), with its ``output``."""
        task = self.get(task_id)
        if task.status is TaskStatus.COMPLETED:
            raise SchedulingError(f"task {task_id!r} is already completed")
        self._check_by_hand(task, "complete", (TaskStatus.PENDING, TaskStatus.AWAITING_HUMAN))
        previous = self.results.get(task_id)
        now = datetime.now(UTC)
        result = ExecutionResult(
            task_id,
            agent=previous.agent if previous else None,
            status=ExecutionStatus.SUCCESS,
            started_at=previous.started_at if previous else now,
            completed_at=now,
            output=output,
            metadata={"by_hand": True, **({"note": note} if note else {})},
        )
        if note:
            task.notes.append(note)
        self.held.discard(task_id)
        await self.transition(task, TaskStatus.COMPLETED, reason=note, result=result)
        await self._tell_watcher(task_id)
        return result

    async def fail(self, task_id: str, error: str = "failed by hand") -> ExecutionResult:
        """Mark a task failed by hand; its dependents are blocked if a run is active."""
        task = self.get(task_id)
        self._check_by_hand(task, "fail", (TaskStatus.PENDING, TaskStatus.AWAITING_HUMAN))
        now = datetime.now(UTC)
        result = ExecutionResult(
            task_id,
            status=ExecutionStatus.FAILED,
            started_at=now,
            completed_at=now,
            error=error,
            metadata={"by_hand": True},
        )
        self.held.discard(task_id)
        await self.transition(task, TaskStatus.FAILED, reason=f"failed: {error}", result=result)
        await self._tell_watcher(task_id)
        return result

    async def cancel(self, task_id: str, reason: str = "cancelled by user") -> None:
        """Cancel a task and hold it: a call in flight is cancelled; the task will not run
        again until reset, and its pending dependents are blocked (in an active run)."""
        task = self.get(task_id)
        if task.status is TaskStatus.COMPLETED:
            raise SchedulingError(f"task {task_id!r} is already completed")
        if task.status is TaskStatus.CANCELLED:
            self.held.add(task_id)
            self._interrupted.discard(task_id)
            return
        inflight = self._inflight.get(task_id)
        if inflight is not None and inflight is not asyncio.current_task():
            self._cancel_requests.add(task_id)
            inflight.cancel()
            await asyncio.wait([inflight])
            return
        self.held.add(task_id)
        self._interrupted.discard(task_id)
        await self.transition(task, TaskStatus.CANCELLED, reason=reason)
        await self._tell_watcher(task_id)

    async def reset(self, task_id: str, reason: str = "reset by hand") -> None:
        """Put a task back to pending (undoing a cancel): the next run runs it."""
        task = self.get(task_id)
        self._check_by_hand(task, "reset", ())
        self.held.discard(task_id)
        self._interrupted.discard(task_id)
        if task.status is not TaskStatus.PENDING:
            await self.transition(task, TaskStatus.PENDING, reason=reason)

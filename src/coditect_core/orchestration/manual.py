"""What a person does to a task by hand, as :class:`~.orchestrator.ProjectOrchestrator`
methods: complete it (with its output), fail it, cancel it.

A mixin of the orchestrator (as :class:`~.interfaces.InterfaceHandlers` is of the executor):
each action checks the task can take it (never while its call is in flight; during a run only
from a state the run is not acting on), goes through the orchestrator's one transition method,
so that observers (the store) see it, and lets an active run react (release or block the
dependents).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import SchedulingError
from .execution_result import ExecutionResult, ExecutionStatus
from .task import AgentTask, TaskStatus

if TYPE_CHECKING:
    from .run_loop import RunLoop

__all__ = ["INTERRUPTED", "ManualActions"]

INTERRUPTED = "interrupted"
"""``task.metadata`` flag: cancelled because its run was (the next run takes it again)."""


class ManualActions:
    """complete_task, fail_task and cancel_task (mixed into ``ProjectOrchestrator``)."""

    results: dict[str, ExecutionResult]
    _run: RunLoop | None
    _inflight: dict[str, asyncio.Task[Any]]
    _cancel_requests: set[str]

    def get_task(self, task_id: str) -> AgentTask:
        raise NotImplementedError

    async def _transition(
        self,
        task: AgentTask,
        new: TaskStatus,
        *,
        reason: str | None = None,
        result: ExecutionResult | None = None,
    ) -> None:
        raise NotImplementedError

    def _check_by_hand(self, task: AgentTask, action: str, allowed: Sequence[TaskStatus]) -> None:
        if task.status is TaskStatus.IN_PROGRESS:
            raise SchedulingError(f"cannot {action} task {task.task_id!r}: it is in progress")
        if self._run is not None and task.status not in allowed:
            raise SchedulingError(
                f"cannot {action} task {task.task_id!r} while a run is active: "
                f"it is {task.status.value}"
            )

    async def complete_task(
        self, task_id: str, output: str | None = None, *, note: str | None = None
    ) -> ExecutionResult:
        """Mark a task done by hand (e.g. one a person finished), with its ``output``."""
        task = self.get_task(task_id)
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
        await self._transition(task, TaskStatus.COMPLETED, reason=note, result=result)
        if self._run is not None:
            await self._run.settle(task_id)
            self._run.fill()
        return result

    async def fail_task(self, task_id: str, error: str = "failed by hand") -> ExecutionResult:
        """Mark a task failed by hand; its dependents are blocked if a run is active."""
        task = self.get_task(task_id)
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
        await self._transition(task, TaskStatus.FAILED, reason=f"failed: {error}", result=result)
        if self._run is not None:
            await self._run.settle(task_id)
        return result

    async def cancel_task(self, task_id: str, reason: str = "cancelled by user") -> None:
        """Cancel a task: a call in flight is cancelled; the task will not run again unless
        reset by hand, and its pending dependents are blocked (in an active run)."""
        task = self.get_task(task_id)
        if task.status is TaskStatus.COMPLETED:
            raise SchedulingError(f"task {task_id!r} is already completed")
        if task.status is TaskStatus.CANCELLED:
            return
        inflight = self._inflight.get(task_id)
        if inflight is not None and inflight is not asyncio.current_task():
            self._cancel_requests.add(task_id)
            inflight.cancel()
            await asyncio.wait([inflight])
            return
        task.metadata.pop(INTERRUPTED, None)
        await self._transition(task, TaskStatus.CANCELLED, reason=reason)
        if self._run is not None:
            await self._run.settle(task_id)

"""``StoreObserver``: records every transition of a :class:`ProjectOrchestrator` run in a store.

The orchestrator routes each status change through its observers and awaits them in order
(:mod:`coditect_core.orchestration.observer`); this observer turns them into store writes, so
that "a task is recorded as started before its call goes out, and its result is committed before
any dependent starts" holds by construction:

* a task's start (and each retry's or fallback's attempt) is awaited until it is committed;
* a task's result is queued without waiting (``wait=False``): the store commits in the order
  writes were queued, and whatever must follow the result (a dependent's start, which is
  queued after it and awaited before the dependent's call goes out; the end of the run) is
  queued later, so it is committed later. A task thus costs one wait for a commit, not two;
* at the end of the run (:meth:`StoreObserver.run_finished`) the observer waits until all of it
  is committed, and raises the error of a result that could not be written, so that the run
  fails as it would have had it waited (a failed result also makes every later awaited write
  fail, which stops the run at the next task start).

The caller begins and finishes the store run around :meth:`ProjectOrchestrator.run`, because
resuming needs the store *before* the run starts::

    run = await store.begin_run(orchestrator.name, options={...}, restart=restart)
    observer = StoreObserver(store, run.run_id)
    await observer.define(orchestrator)          # content hashes of the tasks as defined now
    orchestrator.add_observer(observer)
    summary = await orchestrator.run(...)
    await store.finish_run(run.run_id, run_status(summary))

``recorder`` may be any object with the store's write methods and ``flush`` (:class:`NullRecorder`
included); its ``task_finished`` takes ``wait=False``.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..orchestration.execution_result import ExecutionResult, ExecutionStatus
from ..orchestration.observer import OrchestratorObserver
from ..orchestration.resume import agent_task_hash
from ..orchestration.task import AgentTask, TaskStatus
from .records import AttemptOutcome, AttemptStatus, ToolCallRow

if TYPE_CHECKING:
    from ..orchestration.orchestrator import ProjectOrchestrator, RunSummary

__all__ = ["StoreObserver", "attempt_outcome", "run_status"]

_ATTEMPT = {
    ExecutionStatus.SUCCESS: AttemptStatus.SUCCEEDED,
    ExecutionStatus.FAILED: AttemptStatus.FAILED,
    ExecutionStatus.CANCELLED: AttemptStatus.CANCELLED,
    ExecutionStatus.AWAITING_HUMAN: AttemptStatus.AWAITING_HUMAN,
}


def attempt_outcome(result: ExecutionResult) -> AttemptOutcome:
    """An :class:`AttemptOutcome` from an executor result (tokens, latency, cost if known)."""
    usage = result.usage
    cost = result.cost_usd
    return AttemptOutcome(
        status=_ATTEMPT.get(result.status, AttemptStatus.FAILED),
        error=result.error,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        latency_s=result.duration_seconds,
        cost=float(cost) if isinstance(cost, numbers.Real) else None,
        output=result.output,
        finish_reason=result.finish_reason,
        cached=result.cached,
        turn=turn if isinstance(turn := result.metadata.get("turn"), int) else None,
        tool_calls=json.dumps(calls) if (calls := result.metadata.get("tool_calls")) else None,
        value=None if result.value is None else json.dumps(result.value, ensure_ascii=False),
    )


def run_status(summary: RunSummary) -> str:
    """The store's word for how a run ended."""
    if summary.cancelled:
        return "interrupted"
    if summary.error is not None:
        return "error"
    if summary.ok:
        return "succeeded"
    if summary.ids(TaskStatus.FAILED) or summary.ids(TaskStatus.BLOCKED):
        return "failed"
    if summary.ids(TaskStatus.AWAITING_HUMAN):
        return "waiting"
    return "incomplete"


class StoreObserver(OrchestratorObserver):
    """Writes one orchestrator run's transitions into a store run that has begun."""

    def __init__(self, recorder: Any, run_id: int) -> None:
        self.recorder = recorder
        self.run_id = run_id
        self._attempts: dict[str, int] = {}
        self._turns: dict[tuple[str, int], int] = {}  # (task, loop turn) -> its attempt
        self._held: Collection[str] = ()  # the board's tasks cancelled by hand

    async def run_started(
        self, orchestrator: ProjectOrchestrator, *, max_concurrency: int, fail_fast: bool
    ) -> None:
        self._held = orchestrator.board.held

    def _is_held(self, task: AgentTask) -> bool:
        return task.status is TaskStatus.CANCELLED and task.task_id in self._held

    async def define(self, orchestrator: ProjectOrchestrator) -> dict[str, str]:
        """Record the orchestrator's tasks with their content hashes; returns the hashes."""
        registry, default = orchestrator.registry, orchestrator.executor.default_agent
        hashes = {
            tid: agent_task_hash(task, registry, default)
            for tid, task in orchestrator.tasks.items()
        }
        await self.recorder.define_tasks(self.run_id, hashes)
        return hashes

    async def task_started(
        self,
        task: AgentTask,
        *,
        previous: TaskStatus,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> None:
        self._attempts[task.task_id] = await self.recorder.task_started(
            self.run_id, task.task_id, agent=agent, model=model, interface=interface
        )

    async def attempt_started(
        self,
        task: AgentTask,
        ended: ExecutionResult,
        *,
        agent: str,
        model: str | None,
        interface: str | None,
    ) -> None:
        """End the attempt in flight with ``ended``; record the next one (a retry or fallback)."""
        previous = self._attempts.get(task.task_id)
        if previous is not None:
            await self.recorder.attempt_finished(previous, attempt_outcome(ended))
            turn = ended.metadata.get("turn")
            if isinstance(turn, int):  # an agent loop's turn: its tool calls are recorded under it
                self._turns[(task.task_id, turn)] = previous
        self._attempts[task.task_id] = await self.recorder.attempt_started(
            self.run_id, task.task_id, agent=agent, model=model, interface=interface
        )

    async def attempt_finished(
        self,
        task: AgentTask,
        result: ExecutionResult,
        *,
        previous: TaskStatus,
        reason: str | None,
    ) -> None:
        """Queue the result without waiting for its commit (see the module docstring)."""
        attempt_id = self._attempts.pop(task.task_id, None)
        held = self._is_held(task)
        if attempt_id is None:  # finished by hand: there was no call
            # Completed by hand (TaskBoard.complete): kept, as `coditect task complete` keeps it.
            kept = task.status is TaskStatus.COMPLETED and bool(result.metadata.get("by_hand"))
            await self.recorder.task_finished(
                self.run_id, task.task_id, task.status, output=result.output,
                error=result.error, note=reason, held=held or kept, wait=False,
            )  # fmt: skip
            return
        await self.recorder.task_finished(
            self.run_id, task.task_id, task.status, note=reason, error=result.error,
            attempt_id=attempt_id, attempt=attempt_outcome(result), held=held, wait=False,
        )  # fmt: skip

    async def tool_called(self, task: AgentTask, turn: int, call: dict[str, Any]) -> None:
        """Record a tool call under its turn's attempt, awaited: a resumed loop runs it again
        unless its result is committed."""
        attempt_id = call.get("attempt_id") or self._turns.get((task.task_id, turn))
        if not isinstance(attempt_id, int):
            return  # not a turn the store knows
        await self.recorder.tool_called(
            attempt_id,
            ToolCallRow(
                call_id=str(call["id"]),
                name=str(call["name"]),
                arguments=str(call["arguments"]),
                result=str(call.get("content", call.get("result", ""))),
                is_error=bool(call.get("is_error")),
                duration_s=call.get("duration_s"),
                toolset=call.get("toolset"),
            ),
        )

    async def task_status_changed(
        self, task: AgentTask, old: TaskStatus, new: TaskStatus, *, reason: str | None
    ) -> None:
        await self.recorder.set_task_status(
            self.run_id, task.task_id, new, note=reason, held=self._is_held(task)
        )

    async def run_finished(self, orchestrator: ProjectOrchestrator, summary: RunSummary) -> None:
        """Wait until every write of the run is committed; raise one that failed."""
        await self.recorder.flush()

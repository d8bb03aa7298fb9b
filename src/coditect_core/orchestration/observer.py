"""The hook a durable store (or a timeline, or a test) uses to see every state change of a run.

Every transition of every task passes through :meth:`TaskBoard.transition
<coditect_core.orchestration.board.TaskBoard.transition>`, which awaits the board's observers in
order. The events, in the order they happen for one task::

    task_started(task, ...)        task is IN_PROGRESS; awaited *before* its call goes out
    retry_waiting(task, ...)       0..n times: a request failed and is retried after a wait;
                                   awaited *before* the wait
    attempt_started(task, ended)   0..n times: an attempt failed and another (a retry, or a
                                   fallback agent) begins; awaited *before* it goes out
    attempt_finished(task, result) the call's result and the task's new status, together;
                                   awaited *before* any dependent starts
    task_status_changed(task, ...) every other transition: blocked, reset for a new run,
                                   completed / failed / cancelled by hand

plus ``run_started`` / ``run_finished`` around :meth:`ProjectOrchestrator.run`. A task's
attributes (status, timestamps, notes) are already updated when an event arrives. An exception
raised by an observer stops the run (a state that cannot be recorded must not go on changing).
Every method is a no-op here; subclass and override what you need. The board keeps the state in
memory whatever the observers do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .task import AgentTask, TaskStatus

if TYPE_CHECKING:
    from .executor import ExecutionResult
    from .orchestrator import ProjectOrchestrator, RunSummary

__all__ = ["EventLog", "OrchestratorObserver", "RecordedEvent"]


class OrchestratorObserver:
    """Receives a run's events. Override the ones you need; all are awaited in order."""

    async def run_started(
        self, orchestrator: ProjectOrchestrator, *, max_concurrency: int, fail_fast: bool
    ) -> None:
        """A run begins (after the graph was validated and earlier failures reset)."""

    async def task_started(
        self,
        task: AgentTask,
        *,
        previous: TaskStatus,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> None:
        """``task`` went IN_PROGRESS and its call is about to go out (agent as resolved)."""

    async def attempt_started(
        self,
        task: AgentTask,
        ended: ExecutionResult,
        *,
        agent: str,
        model: str | None,
        interface: str | None,
    ) -> None:
        """The attempt of ``task`` in flight failed (``ended``: its agent, error, usage and
        ``cost_usd``) and another begins on ``agent``: a retry, or a fallback. The task
        stays IN_PROGRESS; the last attempt ends with :meth:`attempt_finished`."""

    async def retry_waiting(
        self, task: AgentTask, *, agent: str, error: str, attempt: int, wait: float
    ) -> None:
        """Request ``attempt`` of ``task`` on ``agent`` (its retry loop's count) failed with
        ``error`` (masked text) and is retried after ``wait`` seconds; :meth:`attempt_started`
        follows when the retry goes out. Nothing is recorded yet: a live view shows the wait."""

    async def tool_called(self, task: AgentTask, turn: int, call: dict[str, Any]) -> None:
        """A tool call of ``task``'s agent loop ran, asked for by its model turn ``turn``:
        ``call`` has its ``id``, ``name``, ``arguments`` (JSON), ``result`` (shortened),
        ``content`` (whole), ``is_error``, ``duration_s`` and ``toolset``."""

    async def attempt_finished(
        self,
        task: AgentTask,
        result: ExecutionResult,
        *,
        previous: TaskStatus,
        reason: str | None,
    ) -> None:
        """An execution of ``task`` ended with ``result``; ``task.status`` is its new status
        (completed, failed, cancelled or awaiting_human). Record both in one go."""

    async def task_status_changed(
        self, task: AgentTask, old: TaskStatus, new: TaskStatus, *, reason: str | None
    ) -> None:
        """Any other transition: blocked by a failed dependency, reset to pending for a new run,
        or completed, failed or cancelled by hand."""

    async def run_finished(self, orchestrator: ProjectOrchestrator, summary: RunSummary) -> None:
        """The run ended (also after a cancellation or a failure of the run itself)."""


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as :class:`EventLog` keeps it."""

    kind: str
    task_id: str | None
    status: str | None
    at: float
    details: dict[str, Any] = field(default_factory=dict)


class EventLog(OrchestratorObserver):
    """Keeps every event in memory, in order (for tests, timelines and debugging)."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def _add(self, kind: str, task: AgentTask | None, **details: Any) -> None:
        self.events.append(
            RecordedEvent(
                kind,
                task.task_id if task else None,
                task.status.value if task else None,
                time.monotonic(),
                details,
            )
        )

    async def run_started(
        self, orchestrator: ProjectOrchestrator, *, max_concurrency: int, fail_fast: bool
    ) -> None:
        self._add("run_started", None, max_concurrency=max_concurrency, fail_fast=fail_fast)

    async def task_started(
        self,
        task: AgentTask,
        *,
        previous: TaskStatus,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> None:
        self._add("task_started", task, previous=previous.value, agent=agent, interface=interface)

    async def attempt_started(
        self,
        task: AgentTask,
        ended: ExecutionResult,
        *,
        agent: str,
        model: str | None,
        interface: str | None,
    ) -> None:
        self._add("attempt_started", task, agent=agent, ended_agent=ended.agent, error=ended.error)

    async def retry_waiting(
        self, task: AgentTask, *, agent: str, error: str, attempt: int, wait: float
    ) -> None:
        self._add("retry_waiting", task, agent=agent, error=error, attempt=attempt, wait=wait)

    async def attempt_finished(
        self,
        task: AgentTask,
        result: ExecutionResult,
        *,
        previous: TaskStatus,
        reason: str | None,
    ) -> None:
        self._add(
            "attempt_finished",
            task,
            previous=previous.value,
            result=result.status.value,
            error=result.error,
        )

    async def task_status_changed(
        self, task: AgentTask, old: TaskStatus, new: TaskStatus, *, reason: str | None
    ) -> None:
        self._add("task_status_changed", task, previous=old.value, reason=reason)

    async def run_finished(self, orchestrator: ProjectOrchestrator, summary: RunSummary) -> None:
        self._add("run_finished", None, ok=summary.ok)

    def for_task(self, task_id: str) -> list[RecordedEvent]:
        """The events of one task, in order."""
        return [e for e in self.events if e.task_id == task_id]

"""``RunLoop``: the event-driven scheduler of one run over a :class:`~.board.TaskBoard`.

A task starts the moment its last dependency completes (the completing task releases its
dependents and refills the free slots itself; no polling, no sleeps), the most urgent ready task
first, never more than ``max_concurrency`` at once. The dependents of a failed or cancelled task
are blocked at once; everything else still runs. Once ``budget`` is reached nothing more starts
(``stop_reason == "budget"``) and the tasks in flight finish. With ``fail_fast``, the first
failure cancels the tasks in flight and starts nothing more.

The loop gets the board and ``execute(task)``, which runs one task and records it on the board;
it changes statuses only through :meth:`TaskBoard.transition` (to block a task). While it runs,
it is the board's :class:`~.board.Watcher`: a task completed, failed or cancelled by hand
releases or blocks its dependents at once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .board import TaskBoard
from .execution_result import ExecutionResult
from .scheduler import dependents_of
from .spend import Budget, BudgetGuard
from .task import AgentTask, TaskStatus

__all__ = ["RunLoop"]

logger = logging.getLogger(__name__)

_DEAD = (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BLOCKED)


class RunLoop:
    """The state of one run: unmet-dependency counts, the ready heap, the workers."""

    def __init__(
        self,
        board: TaskBoard,
        execute: Callable[[AgentTask], Awaitable[ExecutionResult]],
        graph: Mapping[str, Sequence[str]],
        order: Sequence[str],
        *,
        max_concurrency: int,
        fail_fast: bool = False,
        budget: Budget | None = None,
        guard: BudgetGuard | None = None,
    ) -> None:
        self.board = board
        self.tasks = board.tasks
        self.execute = execute
        self.order = order
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        self.budget = budget if budget is not None and budget.active else None
        self.guard = guard
        self.dependents = dependents_of(graph)
        self.position = {tid: i for i, tid in enumerate(self.tasks)}  # definition order
        self.waiting: dict[str, int] = {}  # task id -> dependencies not completed yet
        self.heap: list[tuple[int, int, str]] = []  # (priority rank, position, task id)
        self.running: dict[str, asyncio.Task[None]] = {}  # task id -> the worker running it
        self.workers: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.stop_reason: str | None = None
        self.error: BaseException | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _push(self, tid: str) -> None:
        task = self.tasks[tid]
        heapq.heappush(self.heap, (task.priority.rank, self.position[tid], tid))

    async def start(self) -> None:
        """Count unmet dependencies, block what can never run, start what is ready."""
        for tid in self.order:  # dependencies first: blocking cascades in one pass
            task = self.tasks[tid]
            if task.status is not TaskStatus.PENDING:
                continue
            unmet = 0
            dead: str | None = None
            for dep in set(task.dependencies):
                status = self.tasks[dep].status
                if status is TaskStatus.COMPLETED:
                    continue
                if status in _DEAD:
                    dead = dep
                    break
                unmet += 1
            if dead is not None:
                await self.board.transition(
                    task,
                    TaskStatus.BLOCKED,
                    reason=f"blocked: depends on {dead}, which is {self.tasks[dead].status.value}",
                )
                continue
            self.waiting[tid] = unmet
            if unmet == 0:
                self._push(tid)
        self.fill()

    def _pop_ready(self) -> str | None:
        """The most urgent ready task still pending (others were handled by hand meanwhile)."""
        while self.heap:
            _, _, tid = heapq.heappop(self.heap)
            if self.tasks[tid].status is TaskStatus.PENDING:
                self.waiting.pop(tid, None)
                return tid
        return None

    def check_budget(self) -> None:
        """Stop starting tasks if the budget is reached."""
        if self.budget is not None and not self.stopping:
            reached = self.budget.reached(self.board.spend)
            if reached is None and self.guard is not None:
                reached = self.guard.stopped  # a task stopped before a call that would pass it
            if reached is not None:
                logger.info("budget reached (%s): no new task starts", reached)
                self.stop("budget", cancel=False)

    def fill(self) -> None:
        """Start a worker per ready task while slots are free; resolve ``done`` when idle."""
        self.check_budget()
        while self.heap and len(self.workers) < self.max_concurrency and not self.stopping:
            tid = self._pop_ready()
            if tid is None:
                break
            worker = asyncio.create_task(self._worker(tid), name=f"coditect:{tid}")
            self.workers.add(worker)
        if not self.workers and (self.stopping or not self.heap) and not self.done.done():
            self.done.set_result(None)

    async def _worker(self, tid: str | None) -> None:
        """Run ``tid``, then the next ready task, and so on; exit when nothing is ready.

        A worker holds one of the ``max_concurrency`` slots; taking the next task itself keeps
        a chain's hand-over to one step.
        """
        me = asyncio.current_task()
        assert me is not None
        try:
            while tid is not None:
                self.running[tid] = me
                try:
                    await self.execute(self.tasks[tid])
                    await self.changed(tid)
                finally:
                    del self.running[tid]
                self.check_budget()
                if self.stopping:
                    break
                tid = self._pop_ready()
                if self.heap:
                    self.fill()  # more ready than this worker can take: use free slots
        except asyncio.CancelledError:
            raise
        except Exception as error:  # an observer (the store) failed: the run cannot go on
            logger.error("run stopped: recording a task failed: %r", error)
            if self.error is None:
                self.error = error
            self.stop("error", cancel=True, spare=me)
        finally:
            self.workers.discard(me)
            self.fill()

    async def changed(self, task_id: str) -> None:
        """``task_id`` reached its status: release or block its dependents (the board's
        :class:`~.board.Watcher` method, called by the workers too)."""
        status = self.tasks[task_id].status
        if status is TaskStatus.COMPLETED:
            self.release(task_id)
        elif status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            await self.block_descendants(task_id)
            if self.fail_fast and status is TaskStatus.FAILED and not self.stopping:
                spare = self.running.get(task_id)
                self.stop(f"fail_fast: task {task_id} failed", cancel=True, spare=spare)
        if self.running.get(task_id) is None:
            self.fill()  # changed outside a worker (by hand): its slot may take a task

    def release(self, tid: str) -> None:
        """``tid`` completed: count it off its dependents, queue those now ready."""
        for child in self.dependents.get(tid, ()):
            left = self.waiting.get(child)
            if left is None:
                continue
            self.waiting[child] = left - 1
            if left == 1 and self.tasks[child].status is TaskStatus.PENDING:
                self._push(child)

    async def block_descendants(self, tid: str) -> None:
        """Every pending task downstream of ``tid`` becomes BLOCKED."""
        stack = [tid]
        while stack:
            parent = stack.pop()
            for child in self.dependents.get(parent, ()):
                task = self.tasks[child]
                if task.status is not TaskStatus.PENDING or child in self.running:
                    continue
                self.waiting.pop(child, None)
                await self.board.transition(
                    task,
                    TaskStatus.BLOCKED,
                    reason=f"blocked: upstream task {tid} is {self.tasks[tid].status.value}",
                )
                stack.append(child)

    def stop(self, reason: str, *, cancel: bool, spare: asyncio.Task[Any] | None = None) -> None:
        """Start nothing more; with ``cancel``, cancel the workers (but ``spare``)."""
        self.stopping = True
        self.stop_reason = self.stop_reason or reason
        if cancel:
            for worker in list(self.workers):
                if worker is not spare:
                    worker.cancel()

    async def drain(self) -> None:
        """Wait for every worker to finish recording its task's state."""
        while self.workers:
            await asyncio.gather(*list(self.workers), return_exceptions=True)

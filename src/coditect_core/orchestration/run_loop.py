"""The event-driven scheduler of one :meth:`ProjectOrchestrator.run`: no polling, no sleeps.

A task is started the moment its last dependency completes (the completing task releases its
dependents and refills the free slots itself), the most urgent ready task first, never more
than ``max_concurrency`` at once. The dependents of a failed or cancelled task are blocked at
once; everything else still runs. Once the orchestrator's budget is reached, nothing more
starts (``stop_reason == "budget"``) and the tasks in flight finish. Private to the
orchestrator: state changes go through its ``_transition`` so that observers see every one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Mapping, Sequence
from itertools import count
from operator import attrgetter, or_
from typing import TYPE_CHECKING, Any

from ..errors import SchedulingError
from .calls import ATTEMPT_HOOK
from .scheduler import all_in
from .task import TaskPriority, TaskStatus

if TYPE_CHECKING:
    from .orchestrator import ProjectOrchestrator

__all__: list[str] = []

logger = logging.getLogger(__name__)

_DEAD = (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BLOCKED)
_MAX_TASKS = 1 << 28
_INDEX = _MAX_TASKS - 1
_PLACE = {p: p.rank << 28 for p in TaskPriority}  # a task's place in the heap: this | index
_PRIORITY = attrgetter("priority")


def _dependents(graph: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """task id -> the tasks that depend on it, listed once each; tasks without any are absent."""
    out: dict[str, list[str]] = {}
    if not any(graph.values()):
        return out
    for tid, needs in graph.items():
        if needs:
            for dep in dict.fromkeys(needs):
                out.setdefault(dep, []).append(tid)
    return out


class RunLoop:
    """The state of one run: unmet-dependency counts, the ready heap, the tasks in flight."""

    def __init__(
        self,
        orchestrator: ProjectOrchestrator,
        graph: Mapping[str, Sequence[str]],
        order: Sequence[str],
        max_concurrency: int,
        fail_fast: bool,
    ) -> None:
        self.orch = orchestrator
        self.tasks = orchestrator.tasks
        self.order = order
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        # A ready task's place in the heap: priority rank, then the order tasks were added, as
        # one small int (rank << 28 | index: ints compare faster than tuples, and stay one
        # machine digit); ids[index] is its id. ``key`` holds it for the tasks that wait for
        # dependencies (made in start()).
        self.ids = list(self.tasks)
        if len(self.ids) >= _MAX_TASKS:
            raise SchedulingError(f"a run takes at most {_MAX_TASKS - 1:,} tasks")
        self.key: dict[str, int] = {}
        self.dependents = _dependents(graph)
        self.waiting: dict[str, int] = {}
        self.heap: list[int] = []
        self.running: dict[str, asyncio.Task[None]] = {}  # task id -> the worker running it
        self.workers: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.stop_reason: str | None = None
        budget = orchestrator.budget
        self.budget = budget if budget is not None and budget.active else None
        self.error: BaseException | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _push(self, tid: str) -> None:
        heapq.heappush(self.heap, self.key[tid])

    async def start(self) -> None:
        """Count unmet dependencies, block what can never run, start what is ready."""
        tasks, heap, key = self.tasks, self.heap, self.key
        if not self.dependents and all_in(tasks.values(), TaskStatus.PENDING):
            # All ready (no dependencies, nothing done yet: a fresh wide graph): the places in
            # one go, in C, rather than a Python loop over 10,000s of tasks.
            heap.extend(map(or_, map(_PLACE.__getitem__, map(_PRIORITY, tasks.values())), count()))
            heapq.heapify(heap)
            self.fill()
            return
        for i, (tid, task) in enumerate(tasks.items()):  # (in the order tasks were added)
            if task.status is not TaskStatus.PENDING:
                continue
            place = _PLACE[task.priority] | i
            if task.dependencies:
                key[tid] = place  # checked below, in dependency order
            else:
                heap.append(place)  # ready (the heap is made in one go, below)
        if key:
            for tid in self.order:  # dependencies first: blocking cascades in one pass
                if tid not in key:
                    continue
                task = tasks[tid]
                unmet = 0
                dead: str | None = None
                for dep in set(task.dependencies):
                    status = tasks[dep].status
                    if status is TaskStatus.COMPLETED:
                        continue
                    if status in _DEAD:
                        dead = dep
                        break
                    unmet += 1
                if dead is not None:
                    await self.orch._transition(
                        task,
                        TaskStatus.BLOCKED,
                        reason=f"blocked: depends on {dead}, which is {tasks[dead].status.value}",
                    )
                    continue
                self.waiting[tid] = unmet
                if unmet == 0:
                    heap.append(key[tid])
        heapq.heapify(heap)
        self.fill()

    def _pop_ready(self) -> str | None:
        """The most urgent ready task still pending (others were handled by hand meanwhile)."""
        heap, tasks, ids = self.heap, self.tasks, self.ids
        while heap:
            tid = ids[heapq.heappop(heap) & _INDEX]
            if tasks[tid].status is TaskStatus.PENDING:
                self.waiting.pop(tid, None)
                return tid
        return None

    def check_budget(self) -> None:
        """Stop starting tasks if the budget is reached."""
        if self.budget is not None and not self.stopping:
            reached = self.budget.reached(self.orch.spend)
            if reached is not None:
                logger.info("budget reached (%s): no new task starts", reached)
                self.stop("budget", cancel=False)

    def fill(self) -> None:
        """Start a worker per ready task while slots are free; resolve ``done`` when idle."""
        if self.budget is not None:
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

        A worker holds one of the ``max_concurrency`` slots. Taking the next task itself (rather
        than spawning a new asyncio task for it) keeps a chain's hand-over to one step.
        """
        me = asyncio.current_task()
        assert me is not None
        ATTEMPT_HOOK.set(self.orch._attempt_hook)  # this worker's own context: set once
        try:
            while tid is not None:
                self.running[tid] = me
                try:
                    task = self.tasks[tid]
                    await self.orch._execute_and_record(task, None, me)
                    if task.status is TaskStatus.COMPLETED:
                        self.release(tid)  # the common case, without a coroutine
                    else:
                        await self.settle(tid)
                finally:
                    del self.running[tid]
                if self.budget is not None:
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

    async def settle(self, tid: str) -> None:
        """React to ``tid`` reaching its status: release or block its dependents."""
        status = self.tasks[tid].status
        if status is TaskStatus.COMPLETED:
            self.release(tid)
        elif status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            await self.block_descendants(tid)
            if self.fail_fast and status is TaskStatus.FAILED and not self.stopping:
                self.stop(f"fail_fast: task {tid} failed", cancel=True, spare=self.running.get(tid))

    def release(self, tid: str) -> None:
        """``tid`` completed: count it off its dependents, queue those now ready."""
        for child in self.dependents.get(tid, ()):
            left = self.waiting.get(child)
            if left is None:
                continue
            left -= 1
            self.waiting[child] = left
            if left == 0 and self.tasks[child].status is TaskStatus.PENDING:
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
                await self.orch._transition(
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

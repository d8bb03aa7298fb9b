"""What ``coditect run`` shows while it runs, on stderr: a live display on a terminal, plain lines
otherwise (nothing with ``--json`` off a terminal).

Every view is an :class:`~coditect_core.orchestration.observer.OrchestratorObserver`: it is fed
by the run's events (and the resume plan, ``planned``), never by reading the orchestrator's
state. :class:`RunTally` keeps the figures the events give: done / running / failed / blocked,
tokens, cost, each task in flight with its agent, attempt number, start, and the retry it waits
for. :class:`LiveView` draws them with Rich: a header (the counts, tokens, cost so far, an ETA
from the work left) and one line per task in flight; it clears itself when it stops, a Ctrl-C
included (:meth:`LiveView.clear` is what the stop signal calls first), so nothing is left
behind. :class:`PlainView` writes one line per event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..orchestration.observer import OrchestratorObserver
from ..orchestration.task import TaskStatus
from .output import Shown, err_console

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from ..orchestration.execution_result import ExecutionResult
    from ..orchestration.resume import ResumePlan
    from ..orchestration.task import AgentTask

__all__ = ["LiveView", "PlainView", "RunTally", "make_view"]

SHOWN_IN_FLIGHT = 20
"""The live display draws at most this many tasks in flight (then "... and N more")."""


@dataclass
class InFlight:
    """A task in flight, as the events told it."""

    agent: str
    attempt: int
    started: float
    retry_at: float | None = None  # when the retry it waits for goes out (monotonic)
    error: str = ""  # why it waits


class RunTally(OrchestratorObserver):
    """The figures of a run as its events give them; shows nothing (the ``--json`` view off a
    terminal). The views below draw them."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.resumed = 0
        self.counts = dict.fromkeys(("completed", "failed", "blocked", "other"), 0)
        self.finished_here = 0  # tasks this run executed to an end (for the ETA)
        self.tokens = 0
        self.cost_known = 0.0
        self.cost_unknown = 0
        self.in_flight: dict[str, InFlight] = {}
        self.first_start: float | None = None
        self.lock = threading.Lock()  # the live display reads from its refresh thread

    def __enter__(self) -> RunTally:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def planned(self, plan: ResumePlan) -> None:
        self.resumed = len(plan.skip)
        self.counts["completed"] += self.resumed

    def _spent(self, result: ExecutionResult) -> None:
        if result.usage is not None:
            self.tokens += result.usage.total_tokens
        if result.cost_usd is None:
            self.cost_unknown += 1
        else:
            self.cost_known += result.cost_usd

    async def task_started(self, task: AgentTask, **kw: Any) -> None:
        now = time.monotonic()
        with self.lock:
            if self.first_start is None:
                self.first_start = now
            self.in_flight[task.task_id] = InFlight(kw.get("agent") or "?", 1, now)

    async def retry_waiting(
        self, task: AgentTask, *, agent: str, error: str, attempt: int, wait: float
    ) -> None:
        with self.lock:
            flight = self.in_flight.get(task.task_id)
            if flight is not None:
                flight.retry_at, flight.error = time.monotonic() + wait, error

    async def attempt_started(self, task: AgentTask, ended: ExecutionResult, **kw: Any) -> None:
        with self.lock:
            self._spent(ended)
            flight = self.in_flight.get(task.task_id)
            if flight is not None:
                flight.attempt += 1
                flight.agent = kw.get("agent") or flight.agent
                flight.retry_at, flight.error = None, ""

    async def attempt_finished(self, task: AgentTask, result: ExecutionResult, **kw: Any) -> None:
        with self.lock:
            self.in_flight.pop(task.task_id, None)
            if result.attempts or result.usage is not None:
                self._spent(result)
            self.finished_here += 1
            self._count(task.status)

    async def task_status_changed(
        self, task: AgentTask, old: TaskStatus, new: TaskStatus, **kw: Any
    ) -> None:
        if new is TaskStatus.BLOCKED:
            with self.lock:
                self.counts["blocked"] += 1

    def _count(self, status: TaskStatus) -> None:
        key = status.value if status.value in self.counts else "other"
        self.counts[key] += 1

    def eta(self, now: float) -> float | None:
        """Seconds until the work left is done, at this run's pace so far (``None``: unknown)."""
        if not self.finished_here or self.first_start is None:
            return None
        left = self.total - sum(self.counts.values())
        return (now - self.first_start) / self.finished_here * max(left, 0)

    def cost_text(self) -> str:
        from ..reporting import fmt

        if self.cost_unknown:
            return fmt.partial_cost(self.cost_known, self.cost_unknown)
        return fmt.usd(self.cost_known)


class PlainView(RunTally):
    """One line per event, for a log or a pipe (not a terminal)."""

    def __init__(self, total: int, out: Console) -> None:
        super().__init__(total)
        self.out = out
        self.shown = Shown()  # the project is loaded: its secrets are known
        self.done = 0

    def _say(self, line: str) -> None:
        self.out.print(self.shown(line), markup=False, highlight=False)

    def planned(self, plan: ResumePlan) -> None:
        super().planned(plan)
        self.done = self.resumed
        if self.resumed:
            self._say(f"{self.resumed} task(s) already done: skipped")

    async def task_started(self, task: AgentTask, **kw: Any) -> None:
        await super().task_started(task, **kw)
        self._say(f"started   {task.task_id} on {kw.get('agent') or '?'}")

    async def retry_waiting(
        self, task: AgentTask, *, agent: str, error: str, attempt: int, wait: float
    ) -> None:
        from ..reporting import fmt

        await super().retry_waiting(task, agent=agent, error=error, attempt=attempt, wait=wait)
        self._say(f"waiting   {task.task_id} on {agent}: retry in {fmt.duration(wait)}")

    async def attempt_started(self, task: AgentTask, ended: ExecutionResult, **kw: Any) -> None:
        await super().attempt_started(task, ended, **kw)
        agent = kw.get("agent") or "?"
        turn = ended.metadata.get("turn")
        if turn is not None:  # an agent loop's turn asked for tools: the next turn follows
            calls = ", ".join(str(c.get("name")) for c in ended.metadata.get("tool_calls") or ())
            self._say(f"{'turn':<9} {task.task_id} on {agent}: turn {turn} calls {calls}")
            return
        kind = "retry" if agent == ended.agent else "fallback"
        self._say(f"{kind:<9} {task.task_id} on {agent} after: {ended.error}")

    async def attempt_finished(self, task: AgentTask, result: ExecutionResult, **kw: Any) -> None:
        from ..reporting import fmt

        flight = self.in_flight.get(task.task_id)
        elapsed = time.monotonic() - flight.started if flight is not None else 0.0
        await super().attempt_finished(task, result, **kw)
        self.done += 1
        tokens = (
            f"{fmt.count(result.usage.total_tokens)} tokens" if result.usage else "no token count"
        )
        line = f"{task.status.value:<9} {task.task_id} in {fmt.duration(elapsed)}, {tokens}"
        if result.error:
            line += f": {result.error}"
        self._say(f"[{self.done}/{self.total}] {line}")


class LiveView(RunTally):
    """The live display on a terminal (stderr): a header and the tasks in flight, redrawn four
    times a second; failures are printed above it as they happen. Transient: cleared when it
    stops, however the run ends."""

    def __init__(self, total: int, out: Console) -> None:
        from rich.live import Live

        super().__init__(total)
        self.out = out
        self.shown = Shown()
        self.live = Live(
            console=out,
            get_renderable=self.render,
            transient=True,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.cleared = False

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def clear(self) -> None:
        """Stop drawing and erase the display (idempotent): at the end of the run, or first
        thing on Ctrl-C, before the message that says the run is stopping."""
        if not self.cleared:
            self.cleared = True
            self.live.stop()

    def _line(self, text: str, style: str = "") -> Any:
        from rich.text import Text

        return Text(self.shown(text), style=style, no_wrap=True, overflow="ellipsis")

    def render(self) -> RenderableType:
        from rich.console import Group

        from ..reporting import fmt

        now = time.monotonic()
        with self.lock:
            counts = dict(self.counts)
            flights = sorted(self.in_flight.items(), key=lambda item: item[1].started)
            eta = self.eta(now)
            tokens, cost = self.tokens, self.cost_text()
        head = (
            f"done {counts['completed']}/{self.total} · running {len(flights)} · "
            f"failed {counts['failed']} · blocked {counts['blocked']} · "
            f"{fmt.count(tokens)} tokens · {cost} · "
            f"ETA {fmt.duration(eta) if eta is not None else '—'}"
        )
        lines = []
        if self.resumed:
            lines.append(self._line(f"resumed: {self.resumed} already done", "dim"))
        lines.append(self._line(head, "bold"))
        for tid, flight in flights[:SHOWN_IN_FLIGHT]:
            text = (
                f"  {tid}  {flight.agent}  attempt {flight.attempt}  "
                f"{fmt.duration(now - flight.started)}"
            )
            if flight.retry_at is not None:
                wait = max(flight.retry_at - now, 0.0)
                text += f"  waiting {fmt.duration(wait)} to retry: {' '.join(flight.error.split())}"
            lines.append(self._line(text, "yellow" if flight.retry_at is not None else ""))
        if len(flights) > SHOWN_IN_FLIGHT:
            lines.append(self._line(f"  ... and {len(flights) - SHOWN_IN_FLIGHT} more", "dim"))
        return Group(*lines)

    async def attempt_finished(self, task: AgentTask, result: ExecutionResult, **kw: Any) -> None:
        await super().attempt_finished(task, result, **kw)
        if task.status is TaskStatus.FAILED and not self.cleared:
            error = " ".join((result.error or "").split())
            self.live.console.print(
                self._line(f"✗ {task.task_id} {result.agent or ''}: {error}", "red")
            )


def make_view(total: int, *, as_json: bool = False) -> RunTally:
    """The view of a run of ``total`` tasks: live on a terminal (stderr), else plain lines, or
    nothing with ``--json`` (stdout is the JSON; stderr stays quiet off a terminal)."""
    out = err_console()
    if out.is_terminal and not out.is_dumb_terminal:
        return LiveView(total, out)
    if as_json:
        return RunTally(total)
    return PlainView(total, out)

"""The cost forecast of ``coditect run`` (``run --dry-run``, ``coditect forecast``), and the
budget check a run makes with it before it starts.

The same decisions as a run, with nothing written (:func:`.session.preview_run_records`: the
state read read-only, no runner started, no model built), then
:func:`coditect_core.orchestration.forecast.forecast_run` over the project's executor (its
agents' prices, overrides first). A request the project's call journal would answer in the run
(:func:`journal_answers`: the agent may use the cache, ``cache: true`` or ``--cache``, and the
journal holds the very request) is forecast as free; ``is_cached`` replaces that check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from ..errors import CoditectError, StateError
from ..llm_abstractions.messages import Message
from ..llm_abstractions.pricing import price_data_version
from ..orchestration.agent_registry import AgentConfig
from ..orchestration.executor import TaskExecutor
from ..orchestration.forecast import IsCached, RunForecast, forecast_run, nothing_cached
from ..orchestration.resume import ResumePlan
from ..project import Project, read_project_file
from ..store import StateStore, state_path_for
from .session import build_executor, preview_run_records, run_budget

__all__ = [
    "BudgetVerdict",
    "RunChoice",
    "budget_verdict",
    "dry_run",
    "forecast_project",
    "journal_answers",
    "plan_and_forecast",
]


class RunChoice(TypedDict, total=False):
    """What ``coditect run`` was asked for that decides what runs and what it costs: the
    keyword arguments of :func:`.session.preview_run_records`, and ``cache`` (``--cache``)."""

    state: str | os.PathLike[str] | None
    only: Iterable[str] | None
    agent: str | None
    runner: str | None
    ray_address: str | None
    restart: bool
    cache: bool


def journal_answers(
    executor: TaskExecutor, store: StateStore, project: str, *, run_cache: bool
) -> IsCached:
    """Whether a run would answer an agent's request from ``store``'s call journal: the run's
    own rule (:meth:`~coditect_core.orchestration.executor.TaskExecutor.may_use_cache`), then the
    request's key (as the run computes it) looked up in ``project``'s journal."""

    def is_cached(agent: AgentConfig, messages: Sequence[Message]) -> bool:
        try:
            if not executor.may_use_cache(agent, run_cache=run_cache):
                return False
            key = executor.journal_request(agent, list(messages)).key
        except CoditectError:  # an agent the run cannot build: its task fails, nothing cached
            return False
        return key in store.answered(project, [key])

    return is_cached


def plan_and_forecast(
    path: str | os.PathLike[str],
    *,
    is_cached: IsCached | None = None,
    **choice: Unpack[RunChoice],
) -> tuple[Project, ResumePlan, RunForecast]:
    """The project, the resume plan ``coditect run`` would follow now, and its forecast.

    Raises what :func:`.session.preview_run` raises (bad file, unusable state, bad runner).
    """
    state = choice.get("state")
    project, plan, succeeded = preview_run_records(
        path,
        state=state,
        only=choice.get("only"),
        agent=choice.get("agent"),
        runner=choice.get("runner"),
        ray_address=choice.get("ray_address"),
        restart=choice.get("restart", False),
    )
    tasks = {t.task_id: t for t in project.tasks}
    outputs = {tid: record.output for tid, record in succeeded.items()}
    executor = build_executor(project)

    def forecast(check: IsCached | None) -> RunForecast:
        return forecast_run(
            executor,
            tasks,
            plan,
            outputs,
            is_cached=check or nothing_cached,
            prices=price_data_version(),
        )

    db = state_path_for(path, state)
    if is_cached is not None or not db.exists():
        return project, plan, forecast(is_cached)
    try:
        store = StateStore.open(db, readonly=True)
    except StateError:  # a state the run would migrate first: its journal is not read here
        return project, plan, forecast(None)
    with store:
        answered = journal_answers(
            executor, store, project.name, run_cache=choice.get("cache", False)
        )
        return project, plan, forecast(answered)


def forecast_project(
    path: str | os.PathLike[str],
    *,
    is_cached: IsCached | None = None,
    **choice: Unpack[RunChoice],
) -> RunForecast:
    """The forecast of ``coditect run`` on the project file at ``path`` with these options."""
    return plan_and_forecast(path, is_cached=is_cached, **choice)[2]


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """Whether a run's worst case fits its cost budget (``max_cost_usd``)."""

    max_cost_usd: float
    forecast: RunForecast

    @property
    def fits(self) -> bool:
        worst = self.forecast.worst_usd
        return worst is not None and worst <= self.max_cost_usd

    def reason(self) -> str:
        f = self.forecast
        if f.worst_usd is None:
            unknown = ", ".join(f.unknown_tasks[:5]) + (" ..." if len(f.unknown_tasks) > 5 else "")
            return (
                f"the worst case cannot be bounded (unknown price or no output bound: {unknown}); "
                f"known part ${f.worst_known_usd:.4f}, budget ${self.max_cost_usd:.4f}"
            )
        return f"the worst case ${f.worst_usd:.4f} exceeds the budget ${self.max_cost_usd:.4f}"

    def describe(self) -> str:
        """One line: the budget, and whether a run would start at once or ask first."""
        if self.fits:
            return f"budget ${self.max_cost_usd:.4f}: the worst case fits; a run starts at once"
        return f"budget: {self.reason()}; a run would ask first (or need --yes)"

    def to_dict(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "fits": self.fits}


def dry_run(
    path: str | os.PathLike[str],
    *,
    max_cost_usd: float | None = None,
    is_cached: IsCached | None = None,
    **choice: Unpack[RunChoice],
) -> tuple[ResumePlan, RunForecast, BudgetVerdict | None]:
    """What ``run --dry-run`` shows: the plan, its forecast, and the forecast against the cost
    budget (the file's, or ``max_cost_usd``; ``None`` without one)."""
    project, plan, forecast = plan_and_forecast(path, is_cached=is_cached, **choice)
    budget = run_budget(project, max_cost_usd)
    verdict = None
    if budget is not None and budget.max_cost_usd is not None:
        verdict = BudgetVerdict(budget.max_cost_usd, forecast)
    return plan, forecast, verdict


def budget_verdict(
    path: str | os.PathLike[str],
    *,
    max_cost_usd: float | None = None,
    is_cached: IsCached | None = None,
    **choice: Unpack[RunChoice],
) -> BudgetVerdict | None:
    """The forecast against the run's cost budget (the file's, or ``max_cost_usd``); ``None``
    when the run has no cost budget (nothing is forecast then) or nothing to run."""
    spec = read_project_file(path).spec  # no variable needed to know the budget
    limit = (
        max_cost_usd
        if max_cost_usd is not None
        else (spec.budget.max_cost_usd if spec.budget else None)
    )
    if limit is None:
        return None
    _, plan, forecast = plan_and_forecast(path, is_cached=is_cached, **choice)
    if not plan.run:
        return None
    return BudgetVerdict(limit, forecast)

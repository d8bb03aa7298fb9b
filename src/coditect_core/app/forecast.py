"""The cost forecast of ``coditect run`` (``run --dry-run``, ``coditect forecast``), and the
budget check a run makes with it before it starts.

The same decisions as a run, with nothing written (:func:`.session.preview_run_records`: the
state read read-only, no runner started, no model built), then
:func:`coditect_core.orchestration.forecast.forecast_run` over the project's executor (its
agents' prices, overrides first). ``is_cached`` is the seam a cache of calls plugs into.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..llm_abstractions.pricing import price_data_version
from ..orchestration.forecast import IsCached, RunForecast, forecast_run, nothing_cached
from ..orchestration.resume import ResumePlan
from ..project import Project, read_project_file
from .session import build_executor, preview_run_records, run_budget

__all__ = [
    "BudgetVerdict",
    "budget_verdict",
    "dry_run",
    "forecast_project",
    "plan_and_forecast",
]


def plan_and_forecast(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
    is_cached: IsCached = nothing_cached,
) -> tuple[Project, ResumePlan, RunForecast]:
    """The project, the resume plan ``coditect run`` would follow now, and its forecast.

    Raises what :func:`.session.preview_run` raises (bad file, unusable state, bad runner).
    """
    project, plan, succeeded = preview_run_records(
        path,
        state=state,
        only=only,
        agent=agent,
        runner=runner,
        ray_address=ray_address,
        restart=restart,
    )
    tasks = {t.task_id: t for t in project.tasks}
    outputs = {tid: record.output for tid, record in succeeded.items()}
    forecast = forecast_run(
        build_executor(project),
        tasks,
        plan,
        outputs,
        is_cached=is_cached,
        prices=price_data_version(),
    )
    return project, plan, forecast


def forecast_project(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
    is_cached: IsCached = nothing_cached,
) -> RunForecast:
    """The forecast of ``coditect run`` on the project file at ``path`` with these options."""
    return plan_and_forecast(
        path,
        state=state,
        only=only,
        agent=agent,
        runner=runner,
        ray_address=ray_address,
        restart=restart,
        is_cached=is_cached,
    )[2]


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
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
    is_cached: IsCached = nothing_cached,
) -> tuple[ResumePlan, RunForecast, BudgetVerdict | None]:
    """What ``run --dry-run`` shows: the plan, its forecast, and the forecast against the cost
    budget (the file's, or ``max_cost_usd``; ``None`` without one)."""
    project, plan, forecast = plan_and_forecast(
        path,
        state=state,
        only=only,
        agent=agent,
        runner=runner,
        ray_address=ray_address,
        restart=restart,
        is_cached=is_cached,
    )
    budget = run_budget(project, max_cost_usd)
    verdict = None
    if budget is not None and budget.max_cost_usd is not None:
        verdict = BudgetVerdict(budget.max_cost_usd, forecast)
    return plan, forecast, verdict


def budget_verdict(
    path: str | os.PathLike[str],
    *,
    max_cost_usd: float | None = None,
    state: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    agent: str | None = None,
    runner: str | None = None,
    ray_address: str | None = None,
    restart: bool = False,
    is_cached: IsCached = nothing_cached,
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
    _, plan, forecast = plan_and_forecast(
        path,
        state=state,
        only=only,
        agent=agent,
        runner=runner,
        ray_address=ray_address,
        restart=restart,
        is_cached=is_cached,
    )
    if not plan.run:
        return None
    return BudgetVerdict(limit, forecast)

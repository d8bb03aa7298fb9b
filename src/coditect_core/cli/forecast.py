"""``coditect forecast``: what a run would cost, before it runs; the text ``run --dry-run`` and
a run's budget check print too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .output import ExitCode, fail_for, print_json, write_text
from .project_path import project_file

if TYPE_CHECKING:
    from ..orchestration.forecast import RunForecast

__all__ = ["register", "render_forecast", "summary_line"]


def _usd(value: float | None, known: float | None = None) -> str:
    from ..reporting import fmt

    if value is not None:
        return fmt.usd(value)
    if known:
        return f"unknown (known part {fmt.usd(known)})"
    return "unknown"


def summary_line(forecast: RunForecast) -> str:
    """One line: the run's low / expected / worst-case cost."""
    data = forecast.to_dict()
    worst = (
        _usd(data["worst_usd"], data["worst_known_usd"])
        if forecast.output_bound is not None or data["worst_usd"] is not None
        else "unbounded (an agent has no max_tokens)"
    )
    return (
        f"forecast: {len(forecast.tasks)} task(s) to run: "
        f"low {_usd(data['low_usd'], data['low_known_usd'])}, "
        f"expected {_usd(data['expected_usd'], data['expected_known_usd'])}, "
        f"worst case {worst}"
    )


def render_forecast(forecast: RunForecast) -> str:
    """Per task (a line each) and for the run, as plain text (text from the file made inert)."""
    from ..reporting import fmt

    lines = [
        f"{'task':<24} {'agent':<14} {'calls':>5} {'input':>9} {'output<=':>10} "
        f"{'low':>10} {'expected':>10} {'worst':>10}"
    ]
    for t in forecast.tasks:
        bound = fmt.count(t.output_bound) if t.output_bound is not None else "unbounded"
        mark = " (cached)" if t.calls and all(c.cached for c in t.calls) else ""
        if t.note:
            mark = f" ({fmt.inert(t.note)})"
        elif t.unknown_price:
            mark += " (unknown price)"
        for c in t.calls:
            if c.role == "loop":
                mark += f" (agent loop: expected {c.turns} turns, worst case the bound "
                mark += f"max_turns={c.max_turns})"
        lines.append(
            f"{fmt.inert(t.task_id):<24} {fmt.inert(t.agent or '-'):<14} {len(t.calls):>5} "
            f"{fmt.count(t.input_tokens):>9} {bound:>10} {_usd(t.low_usd):>10} "
            f"{_usd(t.expected_usd):>10} {_usd(t.worst_usd):>10}{mark}"
        )
    if forecast.skip:
        lines.append(f"skipped (succeeded and unchanged): {len(forecast.skip)}")
    total_bound = forecast.output_bound
    lines.append(
        f"run: {fmt.count(forecast.input_tokens)} input tokens (estimated), output at most "
        + (fmt.count(total_bound) if total_bound is not None else "unbounded")
    )
    lines.append(summary_line(forecast))
    lines.append(f"prices: {forecast.prices}")
    lines.append(f"note: {forecast.to_dict()['estimate']}")
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast_command(
        project: Annotated[
            Path,
            typer.Argument(
                metavar="PROJECT", help="The project file (YAML; default: project.yaml)."
            ),
        ] = Path("coditect.yaml"),
        agent: Annotated[
            str | None, typer.Option("--agent", "-a", help="Run every task on this agent.")
        ] = None,
        only: Annotated[
            list[str] | None,
            typer.Option("--only", help="Only this task (and what it needs); repeatable."),
        ] = None,
        restart: Annotated[bool, typer.Option(help="As if every task ran again.")] = False,
        state: Annotated[
            Path | None,
            typer.Option(help="State database (default: .coditect/state.db beside it)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        cache: Annotated[
            bool,
            typer.Option(
                "--cache",
                help="As run --cache: requests the call journal holds are forecast as free.",
            ),
        ] = False,
    ) -> None:
        """What a run would cost, before it runs.

        Per task and for the run: the input tokens (an offline estimate), the output bound,
        and the low / expected / worst-case cost. Runs and writes nothing.

        Examples:

          coditect forecast project.yaml

          coditect forecast project.yaml --restart --json
        """
        from ..app.forecast import forecast_project
        from ..errors import CoditectError

        path = project_file(project, as_json=as_json)
        try:
            forecast = forecast_project(
                path, state=state, only=only, agent=agent, restart=restart, cache=cache
            )
        except (CoditectError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json(forecast.to_dict())
            return
        write_text(render_forecast(forecast))

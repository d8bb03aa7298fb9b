"""``coditect report`` as Markdown and JSON: every figure checked against the store's own rows.

The project is a real 50-task run (tests/support/report_scenario.py): two runs of
ProjectOrchestrator on
scripted agents, recorded by StoreObserver, with a 429 retried inside a call, a task failed in
run 1 and retried in run 2, a task failing in both runs (its dependents blocked), a fallback from
one agent to another, and one agent with no price (unknown cost).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
from report_scenario import SCRIPT_TITLE, Recorded, record_scenario
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.errors import StateError
from coditect_core.reporting import (
    AgentRow,
    AttemptRow,
    dependency_levels,
    read_report,
    render_json,
    render_markdown,
)
from coditect_core.reporting.fmt import cost, duration, usd
from coditect_core.reporting.model import tally
from coditect_core.reporting.text import md_escape
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
PROJECT = "report-demo"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return asyncio.run(record_scenario(tmp_path_factory.mktemp("report"), latency=0.005))


@pytest.fixture(scope="module")
def report_json(recorded: Recorded) -> dict:
    result = runner.invoke(app, ["report", str(recorded.project_file), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _store_attempts(recorded: Recorded, **where: object) -> list:
    with StateStore.open(recorded.state, readonly=True) as store:
        return store.attempts(PROJECT, **where)


def test_every_task_matches_the_store(recorded: Recorded, report_json: dict) -> None:
    with StateStore.open(recorded.state, readonly=True) as store:
        snapshot = store.snapshot(PROJECT)
        attempts = store.attempts(PROJECT)
    status = {t.task_id: t.status for t in snapshot.tasks}
    by_task = defaultdict(list)
    for a in attempts:
        by_task[a.task_id].append(a)
    tasks = {t["task_id"]: t for t in report_json["tasks"]}
    assert len(tasks) == 50
    for tid, row in tasks.items():
        mine = by_task.get(tid, [])
        assert row["status"] == status[tid], tid
        f = row["figures"]
        assert f["attempts"] == len(mine), tid
        assert f["prompt_tokens"] == sum(a.prompt_tokens or 0 for a in mine), tid
        assert f["completion_tokens"] == sum(a.completion_tokens or 0 for a in mine), tid
        assert [a["attempt_id"] for a in row["attempts"]] == [a.attempt_id for a in mine]
        busy = sum(a.finished_at - a.started_at for a in mine)
        assert math.isclose(f["busy_seconds"], busy, abs_tol=1e-9), tid
        if any(a.cost is None for a in mine):
            assert f["cost_usd"] is None, tid
        else:
            assert math.isclose(f["cost_usd"], sum(a.cost for a in mine), abs_tol=1e-12), tid


def test_every_agent_matches_the_store(recorded: Recorded, report_json: dict) -> None:
    attempts = _store_attempts(recorded)
    agents = {a["agent"]: a for a in report_json["agents"]}
    assert set(agents) == {"claude", "gpt", "local"}
    for name, row in agents.items():
        mine = [a for a in attempts if a.agent == name]
        f = row["figures"]
        assert f["attempts"] == len(mine)
        assert f["succeeded"] == sum(a.status == "succeeded" for a in mine)
        assert f["failed"] == sum(a.status == "failed" for a in mine)
        assert f["total_tokens"] == sum(
            (a.prompt_tokens or 0) + (a.completion_tokens or 0) for a in mine
        )
        assert row["tasks"] == len({a.task_id for a in mine})
    # local has no price: unknown, never zero; claude and gpt are priced
    assert agents["local"]["figures"]["cost_usd"] is None
    assert agents["local"]["figures"]["cost_status"] == "unknown"
    assert agents["claude"]["figures"]["cost_status"] == "known"
    assert agents["claude"]["figures"]["cost_usd"] > 0
    totals = report_json["totals"]
    assert totals["cost_status"] == "partial"
    assert totals["cost_usd"] is None
    # unknown: every call of the unpriced agent, and the filtered replies (which may be billed)
    unknown = [a for a in attempts if a.cost is None]
    assert {a.agent for a in unknown if "filtered" not in (a.error or "")} == {"local"}
    assert totals["cost_unknown_attempts"] == len(unknown)
    assert totals["attempts"] == len(attempts)


def test_retries_fallbacks_and_blocked_tasks(recorded: Recorded, report_json: dict) -> None:
    s = recorded.scenario
    tasks = {t["task_id"]: t for t in report_json["tasks"]}
    once = tasks[s.fail_once]
    assert once["status"] == "completed"
    assert [(a["run_id"], a["kind"], a["status"]) for a in once["attempts"]] == [
        (1, "first", "failed"),
        (2, "first", "succeeded"),  # issue 18: a later run's first try is not a retry
    ]
    always = tasks[s.fail_always]
    assert always["status"] == "failed"
    assert [a["kind"] for a in always["attempts"]] == ["first", "first"]  # one in each run
    assert "filtered" in always["error"]
    fallback = tasks[s.fallback]
    assert [(a["agent"], a["kind"], a["status"]) for a in fallback["attempts"]] == [
        ("claude", "first", "failed"),
        ("gpt", "fallback", "succeeded"),
    ]
    assert fallback["agents"] == ["claude", "gpt"]
    blocked = [t for t in tasks.values() if t["status"] == "blocked"]
    assert blocked, "the failing task leaves its dependents blocked"
    for t in blocked:
        assert t["figures"]["attempts"] == 0
        assert t["figures"]["cost_usd"] == 0  # nothing was called: nothing was spent
        # its cause, without the status it stands beside (issue 18: no "blocked: blocked:")
        assert t["error"].startswith(("upstream task ", "depends on ")), t["error"]
    assert report_json["totals"]["fallbacks"] == 1
    # the retry after the scripted 429, in the same run (issue 18: fail_once and fail_always
    # tried again in run 2 are that run's first attempts, not retries)
    assert report_json["totals"]["retries"] == 1
    assert [r["status"] for r in report_json["runs"]] == recorded.statuses


def test_one_run_shows_the_tasks_as_that_run_left_them(recorded: Recorded) -> None:
    s = recorded.scenario
    with StateStore.open(recorded.state, readonly=True) as store:
        first = read_report(store, PROJECT, run_id=1)
        second = read_report(store, PROJECT, run_id=2)
        with pytest.raises(StateError, match="no run 9"):
            read_report(store, PROJECT, run_id=9)
    assert first.task(s.fail_once).status == "failed"
    assert second.task(s.fail_once).status == "completed"
    assert [a.kind for a in second.task(s.fail_once).attempts] == ["first"]
    assert first.totals.attempts == len(_store_attempts(recorded, run_id=1))
    assert second.totals.attempts == len(_store_attempts(recorded, run_id=2))
    blocked_in_1 = {t.task_id for t in first.tasks if t.status == "blocked"}
    assert len(blocked_in_1) > first.status_counts.get("failed", 0)
    # a task completed in run 1 and untouched by run 2 is still completed in run 2's report
    done_in_1 = {t.task_id for t in first.tasks if t.status == "completed"}
    assert all(second.task(tid).status == "completed" for tid in done_in_1)
    assert [r.run_id for r in second.runs] == [2]


def test_markdown_tables(recorded: Recorded) -> None:
    result = runner.invoke(app, ["report", str(recorded.project_file)])
    assert result.exit_code == 0, result.output
    md = result.stdout
    s = recorded.scenario
    assert md.startswith(f"# Report: {PROJECT}\n")
    lines = md.splitlines()
    local = next(line for line in lines if line.startswith("| local |"))
    assert local.rstrip(" |").endswith("unknown")
    always = next(line for line in lines if line.startswith(f"| `{s.fail_always}` |"))
    cells = [c.strip() for c in always.strip("|").split("|")]
    assert cells[2] == "failed"
    assert cells[4] == "2"
    assert r"\<script\>alert(1)\</script\>" in md  # shown as text, never as HTML
    assert "<script>" not in md
    problems = md.split("## Problems", 1)[1]
    assert f"`{s.fail_always}` **failed**" in problems
    # issue 18: the tasks it blocks, grouped once ("N tasks blocked by X"), not one line each
    assert f"tasks blocked** by `{s.fail_always}`" in problems
    assert "blocked: blocked" not in md


def test_json_report_is_the_same_through_the_api(recorded: Recorded, report_json: dict) -> None:
    with StateStore.open(recorded.state, readonly=True) as store:
        data = read_report(store, PROJECT)
    again = json.loads(render_json(data))
    assert again["format"] == "coditect-report"
    assert again["version"] == 1
    assert [t["task_id"] for t in again["tasks"]] == [t["task_id"] for t in report_json["tasks"]]
    assert SCRIPT_TITLE in {t["title"] for t in report_json["tasks"]}
    # without the project file the store still gives ids, statuses and figures
    assert again["tasks"][0]["title"] == ""
    assert again["totals"] == {
        **report_json["totals"],
        "wall_seconds": again["totals"]["wall_seconds"],
    }
    assert render_markdown(data).count("\n| `T") == 50


def test_cli_errors_and_output_file(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(recorded.project_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Report:")
    result = runner.invoke(app, ["report", str(recorded.project_file), "--run", "7"])
    assert result.exit_code == 2
    assert "no run 7 (runs: 1, 2)" in result.output
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(recorded.project_file.read_text())
    result = runner.invoke(app, ["report", str(fresh)])
    assert result.exit_code == 2
    assert "has not been run" in result.output
    assert not (tmp_path / ".coditect").exists()  # a report never creates state
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: {}\ntasks: 3\n")
    assert runner.invoke(app, ["report", str(bad)]).exit_code == 2
    result = runner.invoke(
        app, ["report", str(fresh), "--state", str(recorded.state), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["project"] == PROJECT


def _attempt(kind: str = "first", cost_usd: float | None = None, **kw: object) -> AttemptRow:
    fields = dict(
        attempt_id=1, run_id=1, task_id="T", number=1, kind=kind, agent="a", model="m",
        interface="api", started_at=0.0, finished_at=1.0, duration_s=1.0, status="succeeded",
        error=None, prompt_tokens=10, completion_tokens=5, latency_s=1.0, cost_usd=cost_usd,
        output=None,
    )  # fmt: skip
    fields.update(kw)
    return AttemptRow(**fields)  # type: ignore[arg-type]


def test_unknown_cost_is_never_a_zero() -> None:
    assert cost(tally([])) == "$0"
    unknown = tally([_attempt(), _attempt()])
    assert unknown.cost_usd is None
    assert cost(unknown) == "unknown"
    partial = tally([_attempt(cost_usd=0.5), _attempt()])
    assert partial.cost_usd is None
    assert partial.cost_known_usd == 0.5
    assert cost(partial) == "$0.500 + unknown (1)"
    assert cost(partial, detail=False) == "$0.500 + unknown"
    attempts = [_attempt(cost_usd=1.25), _attempt(cost_usd=0.0, status="failed")]
    known = tally(attempts)
    assert known.cost_usd == 1.25
    assert cost(known) == "$1.25"
    assert AgentRow("a", ["m"], 1, known, attempts).failed == 1
    assert known.tokens == 30
    assert cost(None) == "unknown"
    assert usd(0.0000363) == "$0.000036"
    assert usd(0.004) == "$0.0040"
    assert duration(0.5) == "0.50 s"
    assert duration(125) == "2 m 05 s"
    assert duration(7300) == "2 h 01 m"
    assert duration(None) == "—"


def test_dependency_levels() -> None:
    graph = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["missing"], "e": ["c", "d"]}
    assert dependency_levels(graph) == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 3}
    cyclic = dependency_levels({"x": ["y"], "y": ["x"], "z": ["y"]})
    assert set(cyclic) == {"x", "y", "z"}
    assert cyclic["z"] == cyclic["y"] + 1
    deep = {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(5000)}  # no recursion limit
    assert dependency_levels(deep)["n4999"] == 4999


def test_markdown_escape() -> None:
    assert md_escape("a | b\nc") == r"a \| b c"
    assert md_escape("<b>[x](y)`z`*") == r"\<b\>\[x\](y)\`z\`\*"

"""Reports at the edges: a run still going, a project never run, tasks the file no longer has,
attempts with nothing known about their cost or tokens, idle gaps between runs, long texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coditect_core.orchestration.spend import Tally
from coditect_core.orchestration.task import AgentTask
from coditect_core.reporting import read_report, render_html, render_json, render_markdown
from coditect_core.reporting.model import ReportData, RunRow, TaskRow
from coditect_core.reporting.svg import _segments
from coditect_core.store import AttemptOutcome, StateStore

pytestmark = pytest.mark.timeout(60)


async def test_a_run_in_flight(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"A": "h1", "B": "h2"})
        done = await store.task_started(run.run_id, "A", agent="x", model="m")
        await store.task_finished(
            run.run_id, "A", "completed", attempt_id=done,
            attempt=AttemptOutcome("succeeded", prompt_tokens=3, completion_tokens=4,
                                   output="out A"),
        )  # fmt: skip
        await store.task_started(run.run_id, "B", agent="y", model="m")
        tasks = [AgentTask("A", "first"), AgentTask("B", "second", dependencies=["A"])]
        (in_flight,) = store.attempts("p", task_id="B")
        data = read_report(store, "p", tasks=tasks, now=in_flight.started_at + 12.5)
    assert [r.status for r in data.runs] == ["running"]
    b = data.task("B")
    assert b.status == "in_progress"
    (attempt,) = b.attempts
    assert attempt.status == "running"
    assert attempt.finished_at is None
    assert attempt.duration_s == pytest.approx(12.5)  # a call in flight: up to the report's time
    assert b.level == 1
    # no tokens and no cost known for the call in flight: unknown, not zero
    assert data.agents[1].figures.cost_status == "unknown"
    assert data.task("A").output == "out A"
    html = render_html(data)
    assert 'class="bar a-running k-first"' in html
    assert "in progress" in render_markdown(data)
    assert '"status": "running"' in render_json(data)


async def test_never_run_and_removed_tasks(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        empty = read_report(store, "p", tasks=[AgentTask("A", "a")])
        run = await store.begin_run("p")
        await store.define_tasks(run.run_id, {"OLD": "h"})
        await store.set_task_status(run.run_id, "OLD", "cancelled", note="gone")
        await store.finish_run(run.run_id, "succeeded")
        data = read_report(store, "p", tasks=[AgentTask("A", "a")])
    assert empty.runs == []
    assert empty.task("A").status == "pending"
    html = render_html(empty)
    assert "No attempts recorded yet." in html
    assert 'id="task-A"' in html
    old = data.task("OLD")
    assert not old.defined
    assert old.status == "cancelled"
    assert old.error == "gone"
    assert "not in the project file any more" in render_html(data)


def test_an_idle_gap_between_runs_is_cut_out() -> None:
    def run(start: float, wall: float) -> RunRow:
        return RunRow(1, start, start + wall, "succeeded", wall, Tally(), {}, {})

    # two 10 s runs a day apart: two segments; two runs 5 s apart: one
    assert len(_segments([run(0, 10), run(86_400, 10)], [])) == 2
    assert len(_segments([run(0, 10), run(15, 10)], [])) == 1


def test_long_texts_are_cut_in_html_only() -> None:
    long = "x" * 50_000
    data = ReportData("p", 0.0, None, [], [], [], Tally(), {})
    assert render_html(data)  # nothing at all still renders
    row = TaskRow("T", "t", long, None, None, [], 0, "pending", True, [], Tally(), long, None,
                  None)  # fmt: skip
    data = ReportData("p", 0.0, None, [], [row], [], Tally(), {"pending": 1})
    html = render_html(data, max_text=1000)
    assert "49,000 more characters not shown" in html
    assert len(html) < 20_000
    assert len(re.findall("x{1000}", html)) == 2  # description and output, 1000 each
    assert '"output": "' + long in render_json(data)

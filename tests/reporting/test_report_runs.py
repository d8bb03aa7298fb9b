"""The report's defects of issue 18, on real states (projects run on the fake and stub
providers through ``ProjectSession`` and ``coditect run``), asserted on the rendered report:

* a ``--restart`` run without faults makes no retry (an attempt is a retry only after an
  attempt of that task failed in the same run), in the figures and in the timeline;
* a run that did nothing (everything done already) is not recorded;
* a failed attempt that cost nothing beside attempts of unknown cost: the cost is unknown, not
  ``$0 + unknown``;
* the run's table counts attempts with the same tally as its footer;
* blocked tasks are grouped by what blocks them ("24 tasks blocked by T04"), once, in Markdown,
  HTML and JSON; never "blocked: blocked:".
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import fake_project, run_cli
from stub_server import StubServer, status
from typer.testing import CliRunner

from coditect_core.app.session import ProjectSession
from coditect_core.cli.main import app
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()

FAILING_SCRIPT = {
    "type": "custom",
    "interface": "script",
    "command": [sys.executable, "-c", "import sys; sys.exit(1)"],
}


def _run(project: Path, **kw: Any) -> Any:
    async def go() -> Any:
        async with ProjectSession.open(project) as session:
            return await session.run(**kw)

    return asyncio.run(go())


def _report(project: Path, *args: str) -> str:
    result = runner.invoke(app, ["report", str(project), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _runs(project: Path, name: str) -> list[Any]:
    with StateStore.open(project.parent / ".coditect" / "state.db", readonly=True) as store:
        return store.runs(name)


def test_a_restart_without_faults_makes_no_retry(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    _run(project)
    _run(project, restart=True)
    data = json.loads(_report(project, "--json"))
    kinds = [(a["run_id"], a["kind"]) for t in data["tasks"] for a in t["attempts"]]
    assert len(kinds) == 14  # 7 tasks, twice
    assert {kind for _, kind in kinds} == {"first"}
    assert data["totals"]["retries"] == 0
    assert all(r["figures"]["retries"] == 0 for r in data["runs"])
    md = _report(project)
    assert "**Attempts** 14 (0 retries, 0 fallbacks)" in md
    html = _report(project, "--format", "html")
    assert " k-first" in html
    assert " k-retry" not in html  # the timeline draws no retry
    assert 'class="kind-retry"' not in html  # nor does any attempts table
    assert 'class="kind-first"' in html


def test_a_run_that_did_nothing_is_not_recorded(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    first = _run(project)
    assert len(_runs(project, "quick-fake")) == 1
    assert first.recorded
    again = _run(project)  # everything done already: nothing runs
    assert not again.plan.run
    assert not again.recorded
    assert len(again.skipped) == 7
    runs = _runs(project, "quick-fake")
    assert [r.run_id for r in runs] == [first.run_id]
    assert "· 1 run ·" in _report(project)
    # A restart does something (every task runs again): it is recorded.
    _run(project, restart=True)
    assert len(_runs(project, "quick-fake")) == 2
    # Through the command too, and the report's runs are those that did something.
    done = run_cli("run", project, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recorded"] is False
    assert len(_runs(project, "quick-fake")) == 2
    data = json.loads(_report(project, "--json"))
    assert [r["figures"]["attempts"] for r in data["runs"]] == [7, 7]


def test_a_run_refused_by_its_budget_is_not_recorded(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    done = run_cli("run", project, "--max-tokens", "0", "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["stop_reason"] == "budget"
    assert data["recorded"] is False
    assert _runs(project, "quick-fake") == []
    md = _report(project)
    assert "· 0 runs ·" in md
    assert "7 tasks (7 pending)" in md  # the tasks it saw are known, as of no run
    # The next run (with a budget that lets it work) is the first run recorded.
    done = run_cli("run", project, "--json")
    assert done.returncode == 0, done.stderr
    assert [r.status for r in _runs(project, "quick-fake")] == ["succeeded"]


def test_a_failed_attempt_that_cost_nothing_leaves_the_cost_unknown(
    tmp_path: Path, stub_server: StubServer
) -> None:
    # STEP-4.1 on the fake (no price for its model: cost unknown); STEP-4.2 on a server that
    # refuses the request (HTTP 400: nothing billed, $0, no token counts).
    stub_server.script(status(400, "bad request (scripted)"))
    refused = {
        "type": "openai-compatible",
        "model": "stub-model",
        "base_url": stub_server.openai_url,
        "api_key": "sk-stub-test-1234",
        "options": {"retry": {"max_attempts": 1}},
    }
    project = fake_project(
        tmp_path,
        agents={"refused": refused},
        task_agents={"STEP-4.2": "refused"},
        graph={"STEP-4.1": [], "STEP-4.2": []},
    )
    _run(project)
    data = json.loads(_report(project, "--json"))
    tasks = {t["task_id"]: t for t in data["tasks"]}
    failed = tasks["STEP-4.2"]["attempts"][0]
    assert failed["status"] == "failed"
    assert failed["prompt_tokens"] is None
    assert failed["cost_usd"] == 0  # refused: nothing billed
    totals = data["totals"]
    assert totals["cost_usd"] is None
    assert totals["cost_status"] == "unknown"  # $0 known adds nothing known
    md = _report(project)
    assert "+ unknown" not in md
    assert "**Cost** unknown" in md
    assert md.count("no known cost") == 1  # said once, under the totals
    html = _report(project, "--format", "html")
    assert "$0 + unknown" not in html


def test_the_run_table_counts_attempts_as_its_footer(tmp_path: Path) -> None:
    project = fake_project(
        tmp_path,
        agents={"person": {"type": "custom", "interface": "interactive"}, "bad": FAILING_SCRIPT},
        task_agents={"STEP-4.2": "person", "STEP-4.3": "bad"},
        graph={"STEP-4.1": [], "STEP-4.2": ["STEP-4.1"], "STEP-4.3": []},
    )
    done = run_cli("run", project, "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert sum(t["attempts"] for t in data["tasks"]) == data["cost"]["attempts"] == 3
    rows = {t["task_id"]: t["attempts"] for t in data["tasks"]}
    assert rows == {"STEP-4.1": 1, "STEP-4.2": 1, "STEP-4.3": 1}  # the hand-over is one
    (tmp_path / ".coditect" / "state.db").unlink()
    for extra in ("state.db-wal", "state.db-shm"):
        (tmp_path / ".coditect" / extra).unlink(missing_ok=True)
    table = run_cli("run", project).stdout
    column = [
        int(cells[-1])
        for line in table.splitlines()
        if (cells := [c.strip() for c in line.strip("│┃ ").split("│")])[0].startswith("STEP-")
    ]
    footer = re.search(r"(\d+) attempt\(s\)", table)
    assert footer is not None, table
    assert sum(column) == int(footer.group(1)) == 3


def _blocked_project(tmp_path: Path, blocked: int = 24) -> Path:
    """T01 done, T04 fails (a script that exits 1), T05..T28 all downstream of T04 (a fan
    and a chain), T30 independent."""
    ids = [f"T{n:02d}" for n in range(5, 5 + blocked)]
    graph: dict[str, list[str]] = {"T01": [], "T04": ["T01"]}
    for i, tid in enumerate(ids):
        graph[tid] = ["T04"] if i % 2 == 0 else [ids[i - 1]]
    graph["T30"] = ["T01"]
    spec = {
        "project": "blocked-demo",
        "defaults": {"agent": "fake"},
        "agents": {"fake": {"type": "custom", "provider": "fake"}, "bad": FAILING_SCRIPT},
        "tasks": [
            {
                "id": tid,
                "title": f"task {tid}",
                **({"dependencies": deps} if deps else {}),
                **({"agent": "bad"} if tid == "T04" else {}),
            }
            for tid, deps in graph.items()
        ],
    }
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_blocked_tasks_are_grouped_by_what_blocks_them(tmp_path: Path) -> None:
    project = _blocked_project(tmp_path)
    done = run_cli("run", project)
    assert done.returncode == 1, done.stderr
    md = _report(project)
    problems = md.split("## Problems", 1)[1]
    assert problems.count("blocked") == 1
    line = next(x for x in problems.splitlines() if "blocked" in x)
    assert line.startswith("- **24 tasks blocked** by `T04`: `T05`, `T07`,")  # level order
    assert line.endswith(", … (14 more)")
    assert len(re.findall(r"`T\d\d`", line)) == 1 + 10  # the cause, then ten of the 24
    assert "- `T04` **failed**:" in problems
    html = _report(project, "--format", "html")
    section = html.split('<section id="problems">', 1)[1].split("</section>", 1)[0]
    assert section.count("tasks blocked by") == 1
    assert '24 tasks blocked by <a href="#task-T04">T04</a>:' in section
    data = json.loads(_report(project, "--json"))
    [group] = data["blocked"]
    assert group["by"] == ["T04"]
    assert group["count"] == 24
    assert sorted(group["tasks"]) == [f"T{n:02d}" for n in range(5, 29)]
    blocked = [t for t in data["tasks"] if t["status"] == "blocked"]
    assert len(blocked) == 24  # the per-task data stays
    for text in (md, html, json.dumps(data)):
        assert "blocked: blocked" not in text
    assert {t["error"] for t in blocked} == {"upstream task T04 is failed"}


def test_two_causes_make_two_groups(tmp_path: Path) -> None:
    graph = {"A": [], "B": [], "C": ["A"], "D": ["B"], "E": ["C", "D"], "F": ["D"]}
    project = fake_project(
        tmp_path,
        agents={"bad": FAILING_SCRIPT},
        task_agents={"A": "bad", "B": "bad"},
        graph=graph,
    )
    assert run_cli("run", project).returncode == 1
    data = json.loads(_report(project, "--json"))
    groups = {tuple(g["by"]): g["tasks"] for g in data["blocked"]}
    assert groups == {("B",): ["D", "F"], ("A",): ["C"], ("A", "B"): ["E"]} or groups == {
        ("B",): ["D", "F"],
        ("A",): ["C"],
        ("B", "A"): ["E"],
    }
    md = _report(project)
    assert "**2 tasks blocked** by `B`: `D`, `F`" in md
    assert "**1 task blocked** by `A`: `C`" in md

"""The cost forecast: never below what the run then costs (a property over random graphs, runs
against the loopback stub), its parts (input estimate, output bounds, unknown prices, the cache
seam, recorded upstream outputs), and the budget check of ``coditect run`` in subprocesses."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import run_cli, run_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stub_server import StubServer
from stub_wire import reply_for

from coditect_core.app.forecast import forecast_project
from coditect_core.app.session import ProjectSession
from coditect_core.orchestration.forecast import (
    CHARS_PER_TOKEN,
    WORST_INPUT,
    estimate_tokens,
)

KEY = "sk-test-forecast-0123456789"


def _write(directory: Path, spec: dict[str, Any], name: str = "coditect.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _agents(stub: StubServer) -> dict[str, Any]:
    """Agents on the stub: an OpenAI-compatible one at its own price, two priced by
    genai-prices (one without max_tokens: bounded by the model's context window), a hybrid."""
    return {
        "cheap": {
            "type": "openai-compatible",
            "base_url": stub.openai_url,
            "api_key": KEY,
            "model": "stub-small",
            "max_tokens": 64,
            "price": {"input": 1.0, "output": 4.0},
        },
        "gpt": {
            "type": "openai-gpt",
            "base_url": stub.openai_url,
            "api_key": KEY,
            "model": "gpt-5.4-mini",
            "max_tokens": 32,
        },
        "claude": {
            "type": "anthropic-claude",
            "base_url": stub.url,
            "api_key": KEY,
            "model": "claude-sonnet-5-5",
        },
        "duo": {
            "type": "openai-compatible",
            "interface": "hybrid",
            "reviewer": "gpt",
            "base_url": stub.openai_url,
            "api_key": KEY,
            "model": "stub-duo",
            "max_tokens": 48,
            "price": {"input": 2.0, "output": 8.0},
        },
    }


@st.composite
def graphs(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 7))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        tasks.append(
            {
                "id": f"T{i}",
                "title": draw(st.text("abc xyz", min_size=1, max_size=30)).strip() or "t",
                "description": draw(st.text("lorem ipsum dolor\n", max_size=400)),
                "agent": draw(st.sampled_from(["cheap", "gpt", "claude", "duo"])),
                **({"dependencies": [f"T{d}" for d in deps]} if deps else {}),
            }
        )
    return tasks


def test_the_worst_case_is_never_below_what_the_run_costs(tmp_path: Path) -> None:
    """Over random graphs and agents, run on the stub (its usage fixed by the prompt): the
    forecast's worst case, per run, bounds the run's cost; the expected case is not zero."""
    counter = iter(range(1_000_000))
    with StubServer() as stub:

        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(graphs())
        def check(tasks: list[dict[str, Any]]) -> None:
            folder = tmp_path / f"p{next(counter)}"
            folder.mkdir()
            spec = {"project": "prop", "agents": _agents(stub), "tasks": tasks}
            path = _write(folder, spec)
            forecast = forecast_project(path)
            assert sorted(t.task_id for t in forecast.tasks) == sorted(t["id"] for t in tasks)
            worst = forecast.worst_usd
            assert worst is not None  # every agent here has a known price and a bound
            assert forecast.expected_usd is not None
            assert 0 < forecast.expected_usd <= worst

            async def run() -> dict[str, Any]:
                session = ProjectSession.open(path)
                async with session:
                    outcome = await session.run()
                return outcome.summary.cost

            cost = asyncio.run(run())
            assert cost["cost_unknown_attempts"] == 0
            assert cost["cost_usd"] <= worst, (cost, forecast.to_dict())

        check()


def test_input_estimate_and_output_bound(tmp_path: Path, stub_server: StubServer) -> None:
    spec = {
        "project": "parts",
        "agents": _agents(stub_server),
        "tasks": [
            {"id": "A", "title": "first", "agent": "cheap", "description": "x" * 400},
            {"id": "B", "title": "second", "agent": "cheap", "dependencies": ["A"]},
            {"id": "C", "title": "third", "agent": "claude"},
            {"id": "D", "title": "fourth", "agent": "duo"},
        ],
    }
    path = _write(tmp_path, spec)
    forecast = forecast_project(path)
    by_id = {t.task_id: t for t in forecast.tasks}
    a, b, c, d = (by_id[k] for k in "ABCD")
    # A: the request the run sends, estimated at 4 characters a token, +4 a message, +3
    from coditect_core.orchestration.prompts import build_messages

    session = ProjectSession.open(path)
    try:
        task_a = session.project.task("A")
        agent = session.orchestrator.registry.get("cheap")
        messages = build_messages(task_a, agent)
    finally:
        asyncio.run(session.aclose())
    assert a.input_tokens == estimate_tokens(messages)
    assert a.input_tokens == sum(-(-len(m["content"]) // CHARS_PER_TOKEN) + 4 for m in messages) + 3
    # the stub counts (len + 3) // 4 + 3 a message: the estimate is at least that, and close
    counted = reply_for("openai", {"messages": messages}, None).prompt_tokens
    assert counted <= a.input_tokens <= counted * 1.1
    # B waits on A, not run yet: A's output is counted at A's bound (64 tokens, 256 characters)
    assert b.input_tokens >= 64 + a.input_tokens - estimate_tokens(messages[1:])
    assert a.output_bound == 64
    assert c.output_bound == 4096  # Claude's default max_tokens, sent when none is set
    assert [call.role for call in d.calls] == ["draft", "review", "revision"]
    assert d.output_bound == 48 + 32 + 48
    # worst case: 25% more input, the whole bound; at the agent's own price
    assert a.worst_usd == pytest.approx(
        (round(a.input_tokens * WORST_INPUT + 0.5) * 1.0 + 64 * 4.0) / 1e6, rel=1e-3
    )
    assert a.low_usd < a.expected_usd < a.worst_usd


def test_unknown_prices_and_unbounded_outputs_are_marked(tmp_path: Path) -> None:
    spec = {
        "project": "unknown",
        "agents": {
            "fake": {"type": "custom", "provider": "fake"},  # no price, no bound
            "local": {
                "type": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "max_tokens": 10,
            },  # no price
            "free": {
                "type": "custom",
                "provider": "fake",
                "max_tokens": 5,
                "price": {"input": 0, "output": 0},
            },
        },
        "tasks": [
            {"id": "F", "title": "f", "agent": "fake"},
            {"id": "L", "title": "l", "agent": "local"},
            {"id": "Z", "title": "z", "agent": "free"},
        ],
    }
    forecast = forecast_project(_write(tmp_path, spec))
    f, loc, z = forecast.tasks
    assert f.output_bound is None
    assert f.worst_usd is None
    assert f.unknown_price
    assert loc.expected_usd is None
    assert loc.unknown_price
    assert (z.low_usd, z.expected_usd, z.worst_usd) == (0.0, 0.0, 0.0)
    assert forecast.worst_usd is None
    assert forecast.worst_known_usd == 0.0
    assert forecast.unknown_tasks == ["F", "L"]
    text = run_cli("forecast", tmp_path / "coditect.yaml")
    assert text.returncode == 0, text.stderr
    assert "(unknown price)" in text.stdout
    assert "unbounded" in text.stdout
    assert "offline estimate" in text.stdout


def test_the_cache_seam_and_recorded_outputs(tmp_path: Path, stub_server: StubServer) -> None:
    spec = {
        "project": "seam",
        "agents": _agents(stub_server),
        "tasks": [
            {"id": "A", "title": "a", "agent": "cheap"},
            {"id": "B", "title": "b", "agent": "cheap", "dependencies": ["A"]},
        ],
    }
    path = _write(tmp_path, spec)
    seen = []

    def cached(agent: Any, messages: Any) -> bool:
        seen.append(agent.name)
        return True

    forecast = forecast_project(path, is_cached=cached)
    a, b = forecast.tasks
    assert a.calls[0].cached
    assert (a.low_usd, a.expected_usd, a.worst_usd) == (0.0, 0.0, 0.0)
    assert not b.calls[0].cached  # A's output is not known before the run: never "cached"
    assert b.worst_usd
    assert seen == ["cheap"]
    # after a run: A and B are skipped; with --only B --restart... B reads A's recorded output
    assert run_cli("run", path).returncode == 0
    data = run_json("run", path, "--dry-run")
    assert data["forecast"]["run"] == []
    assert data["forecast"]["worst_usd"] == 0
    again = forecast_project(path, restart=True)
    assert [t.task_id for t in again.tasks] == ["A", "B"]


def test_a_budget_below_the_worst_case_refuses_without_yes(tmp_path: Path) -> None:
    """Not on a terminal: exit 2, a message naming --yes, nothing run, no state written;
    with --yes it runs; within budget the expected case is printed and it runs."""
    spec = {
        "project": "budget",
        "agents": {
            "fake": {
                "type": "custom",
                "provider": "fake",
                "max_tokens": 50,
                "price": {"input": 100.0, "output": 100.0},
            },
        },
        "tasks": [{"id": f"T{i}", "title": f"task {i}"} for i in range(3)],
    }
    path = _write(tmp_path, spec)
    dry = run_cli("run", path, "--max-cost", "0.001", "--dry-run")
    assert dry.returncode == 0
    assert "exceeds the budget $0.0010; a run would ask first (or need --yes)" in dry.stdout
    assert run_json("run", path, "--max-cost", "1000", "--dry-run")["budget"] == {
        "max_cost_usd": 1000.0,
        "fits": True,
    }
    refused = run_cli("run", path, "--max-cost", "0.001")
    assert refused.returncode == 2, refused.stderr
    assert "exceeds the budget $0.0010" in refused.stderr
    assert "--yes" in refused.stderr
    assert "expected $" in refused.stderr  # the forecast's line, printed either way
    assert not (tmp_path / ".coditect").exists()  # nothing run, no state
    as_json = run_cli("run", path, "--max-cost", "0.001", "--json")
    assert as_json.returncode == 2
    assert "--yes" in json.loads(as_json.stdout)["error"]
    assert not (tmp_path / ".coditect").exists()
    ran = run_cli("run", path, "--max-cost", "0.001", "--yes")
    assert ran.returncode != 2, ran.stderr  # not refused: it ran (and the budget stopped it)
    assert "budget" in ran.stdout + ran.stderr
    assert (tmp_path / ".coditect" / "state.db").exists()
    spec["budget"] = {"max_cost_usd": 1000.0}
    _write(tmp_path, spec)
    fits = run_cli("run", path, "--restart")
    assert fits.returncode == 0, fits.stderr
    assert "forecast: 3 task(s) to run" in fits.stderr
    assert "expected $" in fits.stderr


@pytest.mark.parametrize(("answer", "code"), [("n", 2), ("y", 0)])
def test_on_a_terminal_the_run_asks(tmp_path: Path, answer: str, code: int) -> None:
    """Stdin and stderr a terminal (a pseudo-terminal here): the worst case over the budget is
    asked about; "n" runs nothing (exit 2, no state), "y" runs."""
    import os
    import pty
    import select
    import subprocess

    from cli_projects import coditect_argv, env

    spec = {
        "project": "asks",
        "agents": {
            "fake": {
                "type": "custom",
                "provider": "fake",
                "max_tokens": 50,
                "price": {"input": 1.0, "output": 1.0},
            },
        },
        "tasks": [{"id": "T0", "title": "task 0"}],
        "budget": {"max_cost_usd": 0.00001},
    }
    path = _write(tmp_path, spec)
    main, child_side = pty.openpty()
    proc = subprocess.Popen(
        [*coditect_argv(), "run", str(path)],
        stdin=child_side,
        stdout=child_side,
        stderr=child_side,
        env=env(),
        close_fds=True,
    )
    os.close(child_side)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Run anyway?" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                seen += os.read(main, 4096)
        assert b"Run anyway?" in seen, seen
        assert b"expected $" in seen
        os.write(main, f"{answer}\n".encode())
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break
        assert proc.wait(timeout=60) == code, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert (tmp_path / ".coditect" / "state.db").exists() is (answer == "y")


def test_the_budget_check_leaves_a_bad_agent_to_the_runs_own_check(tmp_path: Path) -> None:
    """With a cost budget and an agent whose key variable is unset, the refusal is the run's
    agent check (every problem, with the agent and its task), not a forecast error."""
    spec = {
        "project": "badagent",
        "budget": {"max_cost_usd": 1.0},
        "agents": {"cloud": {"type": "openai-gpt", "api_key": "${FORECAST_UNSET_KEY_VAR}"}},
        "tasks": [{"id": "T0", "title": "task 0"}],
    }
    done = run_cli("run", _write(tmp_path, spec))
    assert done.returncode == 2
    assert "agent 'cloud' (runs task 'T0')" in done.stderr, done.stderr
    assert "FORECAST_UNSET_KEY_VAR is not set" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_an_agent_with_tools_is_forecast_as_a_loop_bounded_by_max_turns(tmp_path: Path) -> None:
    from coditect_core.cli.forecast import render_forecast
    from coditect_core.orchestration.forecast import EXPECTED_TURNS

    plain = {
        "type": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": KEY,
        "model": "stub-small",
        "max_tokens": 64,
        "price": {"input": 1.0, "output": 4.0},
    }
    looping = {**plain, "tools": ["mypkg.tools:lookup"], "max_turns": 7}
    spec = {
        "agents": {"plain": plain, "looping": looping},
        "tasks": [
            {"id": "P", "title": "same", "agent": "plain"},
            {"id": "L", "title": "same", "agent": "looping"},
        ],
    }
    forecast = forecast_project(_write(tmp_path, spec))
    by_id = {t.task_id: t for t in forecast.tasks}
    one, loop = by_id["P"], by_id["L"]
    (call,) = loop.calls
    assert (call.role, call.turns, call.max_turns) == ("loop", EXPECTED_TURNS, 7)
    assert loop.low_usd == pytest.approx(one.low_usd)  # one turn
    assert loop.expected_usd == pytest.approx(one.expected_usd * EXPECTED_TURNS)
    assert loop.worst_usd == pytest.approx(one.worst_usd * 7)
    assert loop.output_bound == 64 * 7
    text = render_forecast(forecast)
    assert "worst case the bound max_turns=7" in text
    assert call.to_dict()["max_turns"] == 7

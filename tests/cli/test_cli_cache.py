"""``run --cache``, an agent's ``cache:``, ``cache stats|clear`` and ``run --replay``, through
real ``coditect`` processes against the stub OpenAI server on 127.0.0.1 (requests counted there).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import run_cli
from stub_server import StubServer

pytestmark = pytest.mark.timeout(240)

KEY = {"OPENAI_API_KEY": "sk-cache-test-0123456789abcdef"}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def _project(
    directory: Path,
    stub: StubServer,
    *,
    temperature: float | None = 0,
    cache: Any = None,
    second: str = "Summarise the design.",
) -> Path:
    agent: dict[str, Any] = {
        "type": "openai-gpt",
        "model": "gpt-4o-mini",
        "api_key": "${OPENAI_API_KEY}",
        "base_url": stub.openai_url,
        "timeout": 30,
    }
    if temperature is not None:
        agent["temperature"] = temperature
    if cache is not None:
        agent["cache"] = cache
    spec = {
        "project": "cached",
        "defaults": {"agent": "gpt", "max_concurrency": 1},
        "agents": {"gpt": agent},
        "tasks": [
            {"id": "T1", "title": "design", "description": "Design the module."},
            {"id": "T2", "title": "summary", "description": second, "dependencies": ["T1"]},
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _asked(stub: StubServer) -> int:
    return [r.path for r in stub.requests].count("/v1/chat/completions")


def _run(*args: str | Path, code: int = 0) -> dict[str, Any]:
    done = run_cli("run", *args, "--json", extra_env=KEY)
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


def _json(*args: str | Path) -> dict[str, Any]:
    done = run_cli(*args, "--json", extra_env=KEY)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _outputs(result: dict[str, Any], project: Path) -> dict[str, str]:
    shown = {t: _json("show", project, t)["output"] for t in ("T1", "T2")}
    assert {row["task_id"] for row in result["tasks"]} == {"T1", "T2"}
    return shown


def test_a_second_run_with_cache_asks_the_provider_nothing(
    tmp_path: Path, stub: StubServer
) -> None:
    project = _project(tmp_path, stub)
    first = _run(project, "--cache")
    assert _asked(stub) == 2
    assert not any(row["cached"] for row in first["tasks"])
    before = _outputs(first, project)

    second = _run(project, "--cache", "--restart")
    assert _asked(stub) == 2  # no request reached the provider
    assert [row["cached"] for row in second["tasks"]] == [True, True]
    assert all(row["cost_usd"] == 0 for row in second["tasks"])
    assert not any((row["usage"] or {}).get("total_tokens") for row in second["tasks"])
    assert _outputs(second, project) == before

    # Shown as cached everywhere: status, show, report, and their --json.
    status = _json("status", project)
    assert status["last_run"]["cached_attempts"] == 2
    shown = _json("show", project, "T1")
    assert [a["cached"] for a in shown["attempts"]] == [False, True]
    report = _json("report", project)
    assert report["totals"]["cached"] == 2
    text = run_cli("show", project, "T1", extra_env=KEY).stdout
    assert "cached" in text
    assert "cached: 2 attempt(s)" in run_cli("status", project, extra_env=KEY).stdout
    assert "2 cached" in run_cli("report", project, extra_env=KEY).stdout
    assert "2 cached" in run_cli("report", project, "--format", "html", extra_env=KEY).stdout

    stats = _json("cache", "stats", project)
    assert (stats["requests"], stats["provider_calls"], stats["cache_hits"]) == (2, 2, 2)
    text = run_cli("cache", "stats", project, extra_env=KEY).stdout
    assert "2 answered by a provider, 2 from the cache" in text

    table = run_cli("run", project, "--cache", "--restart", extra_env=KEY)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("(cached)") == 2  # the run's own summary says so too
    assert _asked(stub) == 2
    state = b"".join(p.read_bytes() for p in (tmp_path / ".coditect").iterdir() if p.is_file())
    assert b"journal_requests" in state
    assert KEY["OPENAI_API_KEY"].encode() not in state  # the key is never journaled


def test_a_changed_prompt_misses_the_cache(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, stub)
    _run(project, "--cache")
    assert _asked(stub) == 2
    _project(tmp_path, stub, second="Summarise the design in one line.")
    again = _run(project, "--cache", "--restart")
    assert _asked(stub) == 3  # T1 from the journal, T2's new prompt from the provider
    assert {row["task_id"]: row["cached"] for row in again["tasks"]} == {"T1": True, "T2": False}


def test_without_cache_or_with_a_sampling_temperature_the_provider_is_asked(
    tmp_path: Path, stub: StubServer
) -> None:
    project = _project(tmp_path, stub)
    _run(project)
    _run(project, "--restart")  # the journal is kept, but not used unless asked
    assert _asked(stub) == 4
    warm = _project(tmp_path, stub, temperature=0.8)
    _run(warm, "--restart")
    _run(warm, "--cache", "--restart")  # sampled: --cache does not answer it
    assert _asked(stub) == 8
    always = _project(tmp_path, stub, temperature=0.8, cache="always")
    _run(always, "--restart")  # cache: always on the agent, no flag needed
    assert _asked(stub) == 8


def test_cache_true_on_the_agent_and_cache_clear(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, stub, cache=True)
    _run(project)
    _run(project, "--restart")
    assert _asked(stub) == 2
    cleared = _json("cache", "clear", project)
    assert cleared == {"cleared": 4}  # two answers from the provider, two from the journal
    assert _json("cache", "stats", project)["requests"] == 0
    _run(project, "--restart")
    assert _asked(stub) == 4


def test_a_bad_cache_value_is_refused_naming_the_field(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, stub, cache="sometimes")
    done = run_cli("run", project, extra_env=KEY)
    assert done.returncode == 2
    assert "cache" in done.stderr
    assert "sometimes" in done.stderr
    assert _asked(stub) == 0


def test_replay_reproduces_a_run_with_the_stub_stopped(tmp_path: Path) -> None:
    with StubServer() as stub:
        project = _project(tmp_path, stub)
        first = _run(project)
        recorded = _outputs(first, project)
    # The stub is gone: any request would fail to connect.
    replayed = _run(project, "--replay", str(first["run_id"]))
    assert [row["status"] for row in replayed["tasks"]] == ["completed", "completed"]
    assert [row["cached"] for row in replayed["tasks"]] == [True, True]
    assert _outputs(replayed, project) == recorded
    stats = _json("cache", "stats", project)
    assert stats["replayed"] == 2

    # A request the journal does not have fails its task, and says so.
    _project(tmp_path, stub, second="Something never asked.")
    missed = _run(project, "--replay", str(first["run_id"]), code=1)
    status = {row["task_id"]: row for row in missed["tasks"]}
    assert status["T1"]["status"] == "completed"
    assert status["T2"]["status"] == "failed"
    assert "not in the journal" in status["T2"]["error"]


def test_replay_of_an_unknown_run_is_refused(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, stub)
    _run(project)
    done = run_cli("run", project, "--replay", "99", extra_env=KEY)
    assert done.returncode == 2
    assert "no run 99" in done.stderr
    assert _json("status", project)["runs"] == 1  # nothing was run


def test_a_command_agent_is_cached_only_by_its_own_setting(tmp_path: Path) -> None:
    """A command may act: --cache does not skip it; its own ``cache: true`` does."""
    counter = tmp_path / "ran.txt"
    script = (
        "import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
        "print('done: ' + sys.stdin.read()[-20:])"
    )

    def project(cache: Any) -> Path:
        agent: dict[str, Any] = {
            "type": "custom",
            "interface": "cli",
            "command": [sys.executable, "-c", script, str(counter)],
        }
        if cache is not None:
            agent["cache"] = cache
        spec = {
            "project": "commands",
            "defaults": {"agent": "cmd"},
            "agents": {"cmd": agent},
            "tasks": [{"id": "T1", "title": "act", "description": "Write the file."}],
        }
        path = tmp_path / "project.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    path = project(None)
    _run(path, "--cache")
    _run(path, "--cache", "--restart")
    assert counter.read_text() == "xx"  # ran twice: --cache does not skip a command
    path = project(True)
    again = _run(path, "--restart")
    assert counter.read_text() == "xx"  # its own cache: true answered from the journal
    assert again["tasks"][0]["cached"] is True


def test_the_forecast_counts_what_the_journal_would_answer_as_free(
    tmp_path: Path, stub: StubServer
) -> None:
    first_prompt, second_prompt = "Summarise the design.", "Summarise it in one line."
    project = _project(tmp_path, stub, second=first_prompt)

    def calls(forecast: dict[str, Any]) -> dict[str, bool]:
        return {t["task_id"]: t["calls"][0]["cached"] for t in forecast["tasks"]}

    before = _json("forecast", project, "--restart", "--cache")
    assert calls(before) == {"T1": False, "T2": False}  # nothing journaled yet
    assert before["worst_usd"] > 0

    _run(project)  # journals both requests (no --cache needed to record them)
    again = _json("forecast", project, "--restart", "--cache")
    # T1's prompt is known and journaled: free. T2's prompt holds T1's output, which a restart
    # produces anew: it is counted at T1's bound, as any output not produced yet (an upper bound).
    assert calls(again) == {"T1": True, "T2": False}
    assert again["tasks"][0]["task_id"] == "T1"
    assert again["tasks"][0]["worst_usd"] == 0
    # Without --cache (and no cache: on the agent) the run would ask the provider again.
    assert calls(_json("forecast", project, "--restart")) == {"T1": False, "T2": False}
    assert calls(_run(project, "--dry-run", "--restart", "--cache")["forecast"])["T1"] is True

    # T2 changed: it runs on T1's recorded output, a request the journal does not hold.
    _project(tmp_path, stub, second=second_prompt)
    changed = _json("forecast", project, "--cache")
    assert calls(changed) == {"T2": False}
    assert changed["worst_usd"] > 0
    _run(project)  # T2 runs on its new prompt
    # T2 changed back: its request is the journaled one; free, and the run asks nothing.
    _project(tmp_path, stub, second=first_prompt)
    back = _json("forecast", project, "--cache")
    assert calls(back) == {"T2": True}
    assert back["worst_usd"] == 0
    assert back["expected_usd"] == 0
    asked = _asked(stub)
    ran = _run(project, "--cache")
    assert ran["ran"] == ["T2"]
    assert {row["task_id"]: row["cached"] for row in ran["tasks"]}["T2"] is True
    assert _asked(stub) == asked

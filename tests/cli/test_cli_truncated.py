"""A reply cut off at ``max_tokens`` (issue 18): each provider's own signal (openai
``finish_reason: length``, anthropic ``stop_reason: max_tokens``, gemini ``MAX_TOKENS``), sent by
the loopback stub server through the real SDK, is recorded on the attempt as ``length`` and the
task is marked truncated in ``run`` (text and ``--json``), ``show``, ``tasks`` and ``report``
(Markdown, JSON, HTML); the agent option ``on_truncated`` accepts, warns or fails.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import run_cli
from stub_server import StubServer, reply

pytestmark = pytest.mark.timeout(180)

KEY = "sk-test-not-a-real-key-0123456789"
AGENTS: dict[str, Any] = {
    "openai": lambda stub: {
        "type": "openai-gpt",
        "model": "gpt-4o-mini",
        "base_url": stub.openai_url,
    },
    "anthropic": lambda stub: {
        "type": "anthropic-claude",
        "model": "claude-haiku-4-5",
        "base_url": stub.url,
    },
    "gemini": lambda stub: {
        "type": "google-gemini",
        "model": "gemini-2.5-flash",
        "base_url": stub.url + "/",
    },
}
ENV = {
    "OPENAI_API_KEY": KEY,
    "ANTHROPIC_API_KEY": KEY,
    "GEMINI_API_KEY": KEY,
    "GOOGLE_API_KEY": KEY,
}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def _project(directory: Path, agent: dict[str, Any], **extra: Any) -> Path:
    spec = {
        "project": "cut",
        "defaults": {"agent": "model", "max_concurrency": 1},
        "agents": {"model": {**agent, "max_tokens": 50, "timeout": 30, **extra}},
        "tasks": [
            {"id": "T1", "title": "long", "description": "Write a long essay."},
            {"id": "T2", "title": "short", "description": "Say hi.", "dependencies": ["T1"]},
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _finish_reasons(project: Path) -> dict[str, list[str | None]]:
    db = project.parent / ".coditect" / "state.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT t.task_id, a.finish_reason FROM attempts a JOIN tasks t ON t.id = a.task_ref "
            "ORDER BY a.id"
        ).fetchall()
    out: dict[str, list[str | None]] = {}
    for tid, reason in rows:
        out.setdefault(tid, []).append(reason)
    return out


@pytest.mark.parametrize("provider", sorted(AGENTS))
def test_each_providers_truncation_is_recorded_and_shown_everywhere(
    tmp_path: Path, stub: StubServer, provider: str
) -> None:
    project = _project(tmp_path, AGENTS[provider](stub))
    stub.script(reply("An essay that stops in the mid", finish_reason="length"), reply("hi"))
    done = run_cli("run", project, "--json", extra_env=ENV)
    assert done.returncode == 0, done.stderr
    tasks = {t["task_id"]: t for t in json.loads(done.stdout)["tasks"]}
    assert (tasks["T1"]["truncated"], tasks["T1"]["finish_reason"]) == (True, "length")
    assert (tasks["T2"]["truncated"], tasks["T2"]["finish_reason"]) == (False, "stop")
    assert _finish_reasons(project) == {"T1": ["length"], "T2": ["stop"]}
    assert "cut off" in done.stderr  # on_truncated: warn (the default) logs it

    shown = run_cli("show", project, "T1")
    assert "truncated" in shown.stdout
    assert "truncated" not in run_cli("show", project, "T2").stdout
    as_json = json.loads(run_cli("show", project, "T1", "--json").stdout)
    assert as_json["attempts"][0]["finish_reason"] == "length"
    listed = run_cli("tasks", project, "--json")
    assert {t["task_id"]: t["truncated"] for t in json.loads(listed.stdout)["tasks"]} == {
        "T1": True,
        "T2": False,
    }
    assert "completed (truncated)" in run_cli("tasks", project).stdout.replace("\n", " ")

    markdown = run_cli("report", project).stdout
    assert "completed (truncated)" in markdown
    report = json.loads(run_cli("report", project, "--format", "json").stdout)
    rows = {t["task_id"]: t for t in report["tasks"]}
    assert rows["T1"]["truncated"] is True
    assert rows["T2"]["truncated"] is False
    html = tmp_path / "report.html"
    assert run_cli("report", project, "--format", "html", "-o", html).returncode == 0
    assert html.read_text().count("st-truncated") >= 2  # the task's badge and its attempt's


def test_run_text_marks_the_truncated_task(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, AGENTS["openai"](stub))
    stub.script(reply("cut", finish_reason="length"), reply("hi"))
    done = run_cli("run", project, extra_env=ENV)
    assert done.returncode == 0, done.stderr
    assert "(truncated)" in done.stdout
    assert "1 reply was cut off at the agent's max_tokens (truncated): T1" in " ".join(
        done.stdout.split()
    )


def test_on_truncated_fail_fails_the_task_naming_agent_and_max_tokens(
    tmp_path: Path, stub: StubServer
) -> None:
    project = _project(tmp_path, AGENTS["openai"](stub), on_truncated="fail")
    stub.script(reply("cut", finish_reason="length"), reply("never asked"))
    done = run_cli("run", project, "--json", extra_env=ENV)
    assert done.returncode == 1, done.stderr
    tasks = {t["task_id"]: t for t in json.loads(done.stdout)["tasks"]}
    assert tasks["T1"]["status"] == "failed"
    assert "'model'" in tasks["T1"]["error"]
    assert "max_tokens=50" in tasks["T1"]["error"]
    assert tasks["T2"]["status"] == "blocked"
    assert stub.request_count == 1  # not retried: it would be cut again
    assert _finish_reasons(project) == {"T1": ["length"]}


def test_on_truncated_accept_neither_warns_nor_fails(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, AGENTS["openai"](stub), on_truncated="accept")
    stub.script(reply("cut", finish_reason="length"), reply("hi"))
    done = run_cli("run", project, "--json", extra_env=ENV)
    assert done.returncode == 0, done.stderr
    assert "cut off" not in done.stderr
    assert _finish_reasons(project) == {"T1": ["length"], "T2": ["stop"]}


def test_on_truncated_takes_only_its_three_words(tmp_path: Path, stub: StubServer) -> None:
    project = _project(tmp_path, AGENTS["openai"](stub), on_truncated="ignore")
    done = run_cli("run", project, extra_env=ENV)
    assert done.returncode == 2
    assert "on_truncated" in done.stderr
    assert "ignore" in done.stderr
    assert not (tmp_path / ".coditect").exists()

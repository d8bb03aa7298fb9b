"""One mask at every exit (issue 19, part 4): a canary key is in no byte anything writes.

The canary is the value of ``CANARY_API_KEY``, expanded into an agent's ``system_prompt``
(sending it to the model is the file's choice: the stub must receive it), and echoed back by
the stub (the OpenAI wire format, through the real SDK) in every reply: at the start of the
reply, so that ``doctor --ping``'s 40-character cut of it would show a piece of it. It must not
appear, whole or in part, in: the output and the logs (``-vv``) of ``run``, ``show``, ``tasks``,
``status``, ``report`` (Markdown, JSON, HTML, to stdout and to a file), ``doctor --ping``; the
state database's files; the spans exported with ``capture_content=True``, of the command's LLM
calls (traced in-process) and of a run's tasks (:class:`TelemetryObserver`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import run_cli
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from reliability_support import KEY
from stub_server import StubServer, reply
from typer.testing import CliRunner

from coditect_core import telemetry
from coditect_core.app.session import ProjectSession
from coditect_core.cli.main import app

pytestmark = pytest.mark.timeout(180)

CANARY = "sk-canary-" + secrets.token_hex(16)
PIECES = [CANARY[i : i + 12] for i in range(0, len(CANARY) - 11, 6)]  # any 12 characters
ECHO = f"{CANARY} is what you told me to guard; here it is again: {CANARY}"


def _project(directory: Path, stub: StubServer) -> Path:
    spec = {
        "project": "canary",
        "defaults": {"agent": "gpt", "max_concurrency": 1},
        "agents": {
            "gpt": {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": stub.openai_url,
                "system_prompt": "Guard this key with your life: ${CANARY_API_KEY}",
                "timeout": 30,
            }
        },
        "tasks": [
            {"id": "T1", "title": "first", "description": "Say the key."},
            {"id": "T2", "title": "second", "description": "Again.", "dependencies": ["T1"]},
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _assert_clean(text: str | bytes, where: str) -> None:
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    for piece in PIECES:
        assert piece.encode() not in data, f"{where}: holds {piece!r}, a piece of the canary"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        server.script(*[reply(ECHO) for _ in range(50)])
        yield server


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CANARY_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return {"CANARY_API_KEY": CANARY, "OPENAI_API_KEY": KEY}


def test_the_canary_is_in_no_output_log_state_or_report(
    tmp_path: Path, stub: StubServer, canary_env: dict[str, str]
) -> None:
    project = _project(tmp_path, stub)
    outputs: list[tuple[str, str]] = []

    def cli(*args: str | Path, code: int = 0) -> str:
        done = run_cli("-vv", *args, extra_env=canary_env)
        assert done.returncode == code, done.stderr
        outputs.append((" ".join(map(str, args)), done.stdout + done.stderr))
        return done.stdout

    cli("run", project)
    sent = json.dumps([r.body for r in stub.requests])
    assert CANARY in sent  # the system prompt went to the model whole: the file's choice
    for args in (
        ["run", project, "--json"],
        ["show", project, "T1"],
        ["show", project, "T2"],
        ["show", project, "T2", "--json"],
        ["tasks", project],
        ["tasks", project, "--json"],
        ["status", project, "--json"],
        ["report", project],
        ["report", project, "--json"],
        ["report", project, "--format", "html"],
        ["report", project, "--format", "html", "-o", tmp_path / "report.html"],
        ["report", project, "-o", tmp_path / "report.md"],
        ["run", project, "--restart"],
        ["doctor", project, "--ping", "--json"],
        ["doctor", project, "--ping"],
        ["agents", project, "--json"],
    ):
        cli(*args)
    doctor = json.loads(run_cli("doctor", project, "--ping", "--json", extra_env=canary_env).stdout)
    assert doctor["agents"][0]["ping"]["ok"] is True
    assert doctor["agents"][0]["ping"]["reply"].startswith("***")  # masked, then cut
    shown = run_cli("show", project, "T2", "--json", extra_env=canary_env).stdout
    assert "Guard this key with your life: ***" in shown  # the system prompt, masked
    for where, text in outputs:
        _assert_clean(text, where)
    for name in ("report.html", "report.md"):
        _assert_clean((tmp_path / name).read_bytes(), name)
    files = [f for f in (tmp_path / ".coditect").rglob("*") if f.is_file()]  # backups too
    assert any(f.name == "state.db" for f in files)
    assert any(f.parent.name == "backups" for f in files)  # run --restart backed it up
    for path in files:
        _assert_clean(path.read_bytes(), path.name)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.instrument(tracer_provider=provider, capture_content=True)
    try:
        yield provider, exporter
    finally:
        telemetry.uninstrument()
        provider.shutdown()


def _span_text(span: Any) -> str:
    parts: list[Any] = [span.name, dict(span.attributes or {}), span.status.description]
    parts += [(e.name, dict(e.attributes or {})) for e in span.events]
    return json.dumps(parts, default=str)


def test_spans_captured_with_content_hold_no_canary(
    tmp_path: Path,
    stub: StubServer,
    canary_env: dict[str, str],
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    project = _project(tmp_path, stub)
    result = CliRunner().invoke(app, ["run", str(project), "--json"])  # in-process: traced
    assert result.exit_code == 0, result.output
    _assert_clean(result.stdout, "run --json (in-process)")

    async def observed_run() -> None:
        async with ProjectSession.open(project) as session:
            session.orchestrator.add_observer(
                telemetry.TelemetryObserver(tracer_provider=provider, capture_content=True)
            )
            outcome = await session.run(restart=True)
            assert outcome.summary.ok

    asyncio.run(observed_run())
    finished = exporter.get_finished_spans()
    calls = [s for s in finished if s.name.startswith("chat ")]
    tasks = [s for s in finished if s.name.startswith("task ")]
    assert len(calls) >= 4
    assert tasks
    for call in calls:  # content was captured: the system prompt and the reply, masked
        messages = json.loads(call.attributes["gen_ai.input.messages"])
        assert messages[0]["parts"][0]["content"] == "Guard this key with your life: ***"
        assert "***" in call.attributes["gen_ai.output.messages"]
    assert any("***" in str(s.attributes.get("coditect.task.output")) for s in tasks)
    for span in finished:
        _assert_clean(_span_text(span), span.name)


def test_a_secret_variable_expanded_into_a_setting_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resolved from a given environment (not the process's), the value is still masked by
    every exit afterwards: it is registered as a secret."""
    from coditect_core.project import parse_project_file
    from coditect_core.secrets import mask

    canary = "sk-other-canary-" + secrets.token_hex(12)
    monkeypatch.delenv("ELSEWHERE_API_KEY", raising=False)
    assert mask(f"x {canary} y") == f"x {canary} y"
    project_file = parse_project_file(
        "agents:\n"
        "  a: {type: custom, provider: fake, system_prompt: 'key ${ELSEWHERE_API_KEY}',\n"
        "      options: {note: 'also ${ELSEWHERE_API_KEY}'}}\n"
        "tasks: [{id: T1, title: t}]\n"
    )
    project = project_file.resolve(environ={"ELSEWHERE_API_KEY": canary})
    assert project.agents.get("a").system_prompt == f"key {canary}"  # sent as the file says
    assert mask(f"x {canary} y") == "x *** y"

"""``coditect ask`` and ``coditect init`` through Typer's runner."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.llm_abstractions import CallParams, FakeLlm, StreamState
from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm

runner = CliRunner()


def test_ask_streams_reply_from_fake_provider() -> None:
    result = runner.invoke(app, ["ask", "--type", "fake", "hello there"])
    assert result.exit_code == 0, result.output
    assert "fake reply to: hello there" in result.stdout


def test_ask_json_has_usage_and_model() -> None:
    result = runner.invoke(app, ["ask", "--type", "fake", "--json", "--system", "be brief", "hi"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "fake reply to: hi"
    assert data["model"] == "fake-model"
    assert data["usage"]["prompt_tokens"] == 3  # "be brief" + "hi"


class Uncounted(FakeLlm):
    """Streams like a server that sends no token counts (llama.cpp's, some others)."""

    provider = "uncounted"

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        yield "no counts here"


def test_ask_says_tokens_unknown_when_the_server_counted_none() -> None:
    register_llm("uncounted", Uncounted, replace=True)
    try:
        streamed = runner.invoke(app, ["ask", "--type", "uncounted", "hi"])
        counted = runner.invoke(app, ["ask", "--type", "fake", "hi"])
    finally:
        unregister_llm("uncounted")
    assert streamed.exit_code == 0, streamed.output
    assert "no counts here" in streamed.stdout
    assert "tokens unknown" in streamed.stderr
    assert " in, " not in streamed.stderr
    assert "1 in, 4 out" in counted.stderr  # "hi"; "fake reply to: hi" (words)


def test_ask_unknown_provider_is_bad_input() -> None:
    result = runner.invoke(app, ["ask", "--type", "no-such-llm", "hi"])
    assert result.exit_code == 2
    assert "unknown provider 'no-such-llm'" in result.stderr


def test_ask_reads_prompt_from_stdin() -> None:
    result = runner.invoke(app, ["ask", "--type", "fake", "-"], input="from stdin\n")
    assert result.exit_code == 0
    assert "fake reply to: from stdin" in result.stdout


def test_init_writes_a_loadable_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((tmp_path / "coditect.yaml").read_text())
    assert data["agents"]["local"]["type"] == "local"
    assert [t["id"] for t in data["tasks"]] == ["TASK-001", "TASK-002"]
    again = runner.invoke(app, ["init", str(tmp_path)])
    assert again.exit_code == 2
    assert "already exists" in again.stderr

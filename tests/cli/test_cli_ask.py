"""``coditect ask`` as a simonw/llm user types it (issue 18): ``-m MODEL`` tells the provider
(and says which on stderr), ``--agent NAME`` reuses a project's agent, the embedded model stays
the default. Real ``coditect`` processes and the real SDKs, against the loopback stub server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_projects import run_cli
from stub_server import StubServer

from coditect_core.app.ask import model_target
from coditect_core.llm_abstractions.local import LocalLlm, default_model_path

pytestmark = pytest.mark.timeout(120)


def _paths(stub: StubServer) -> list[tuple[str, object]]:
    return [
        (r.path, r.body.get("model") if isinstance(r.body, dict) else None) for r in stub.requests
    ]


def test_a_gpt_model_goes_to_openai(stub_server: StubServer) -> None:
    done = run_cli(
        "ask", "-m", "gpt-4o-mini", "hi there",
        extra_env={"OPENAI_BASE_URL": stub_server.openai_url, "OPENAI_API_KEY": "sk-test-1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hi there\n"
    assert "provider: openai-gpt (from the model name 'gpt-4o-mini'" in done.stderr
    assert _paths(stub_server) == [("/v1/chat/completions", "gpt-4o-mini")]


@pytest.mark.parametrize("model", ["o3-mini", "o1", "chatgpt-4o-latest"])
def test_openai_reasoning_models_go_to_openai(stub_server: StubServer, model: str) -> None:
    done = run_cli(
        "ask", "-m", model, "--json", "hi",
        extra_env={"OPENAI_BASE_URL": stub_server.openai_url, "OPENAI_API_KEY": "sk-test-1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"] == "stub reply to: hi"
    assert "provider: openai-gpt" in done.stderr
    assert _paths(stub_server) == [("/v1/chat/completions", model)]


def test_a_claude_model_goes_to_anthropic(stub_server: StubServer) -> None:
    done = run_cli(
        "ask", "-m", "claude-sonnet-4-5", "-s", "be brief", "hi claude",
        extra_env={"ANTHROPIC_BASE_URL": stub_server.url, "ANTHROPIC_API_KEY": "sk-ant-test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hi claude\n"
    assert "provider: anthropic-claude" in done.stderr
    assert _paths(stub_server) == [("/v1/messages", "claude-sonnet-4-5")]
    assert stub_server.requests[0].body["system"] in (
        "be brief",
        [{"type": "text", "text": "be brief"}],
    )


def test_a_gemini_model_goes_to_google(stub_server: StubServer) -> None:
    done = run_cli(
        "ask", "-m", "gemini-2.5-flash", "--base-url", stub_server.url, "hi gemini",
        extra_env={"GEMINI_API_KEY": "g-test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hi gemini\n"
    assert "provider: google-gemini" in done.stderr
    assert "gemini-2.5-flash:streamGenerateContent" in stub_server.requests[0].path


def test_an_unknown_model_says_how_to_pick(stub_server: StubServer) -> None:
    done = run_cli(
        "ask", "-m", "mistral-large", "hi",
        extra_env={"OPENAI_BASE_URL": stub_server.openai_url, "OPENAI_API_KEY": "sk-test-1"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot tell which provider serves model 'mistral-large'" in done.stderr
    for way in ("gpt-*", "claude-*", "gemini-*", ".gguf", "--type PROVIDER", "--agent NAME"):
        assert way in done.stderr, way
    assert stub_server.requests == []


def test_type_still_names_the_provider(stub_server: StubServer) -> None:
    done = run_cli(
        "ask", "-t", "openai-compatible", "--base-url", stub_server.openai_url, "-m", "llama3.2",
        "hi",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hi\n"
    assert "provider:" not in done.stderr  # named: nothing to say
    assert _paths(stub_server) == [("/v1/chat/completions", "llama3.2")]


def _agent_project(directory: Path, stub: StubServer, filename: str = "coditect.yaml") -> Path:
    spec = {
        "project": "ask-agents",
        "defaults": {"agent": "writer"},
        "agents": {
            "writer": {
                "type": "openai-gpt",
                "model": "gpt-4.1-nano",
                "base_url": stub.openai_url,
                "api_key": "${ASK_TEST_KEY}",
                "system_prompt": "You write tersely.",
            },
            "person": {"type": "custom", "interface": "interactive"},
        },
        "tasks": [{"id": "T1", "title": "t"}],
    }
    path = directory / filename
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_agent_with_project_reuses_the_configured_agent(
    stub_server: StubServer, tmp_path: Path
) -> None:
    project = _agent_project(tmp_path, stub_server, "plan.yaml")
    done = run_cli(
        "ask", "--agent", "writer", "--project", project, "hello agent",
        extra_env={"ASK_TEST_KEY": "sk-agent-key"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hello agent\n"
    assert "provider: openai-gpt (agent 'writer')" in done.stderr
    [request] = stub_server.requests
    assert request.body["model"] == "gpt-4.1-nano"
    assert request.body["messages"][0] == {"role": "system", "content": "You write tersely."}
    assert request.headers["authorization"] == "Bearer sk-agent-key"
    assert "sk-agent-key" not in done.stderr + done.stdout


def test_agent_finds_the_project_in_the_folder_and_names_mistakes(
    stub_server: StubServer, tmp_path: Path
) -> None:
    _agent_project(tmp_path, stub_server)
    env = {"ASK_TEST_KEY": "sk-agent-key"}
    done = run_cli("ask", "-a", "writer", "hi", extra_env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stub reply to: hi\n"
    typo = run_cli("ask", "-a", "writr", "hi", extra_env=env, cwd=tmp_path)
    assert typo.returncode == 2
    assert "no agent 'writr' in the file (did you mean 'writer'?)" in typo.stderr
    person = run_cli("ask", "-a", "person", "hi", extra_env=env, cwd=tmp_path)
    assert person.returncode == 2
    assert "agent 'person' is a person" in person.stderr
    both = run_cli("ask", "-a", "writer", "-m", "gpt-4o", "hi", extra_env=env, cwd=tmp_path)
    assert both.returncode == 2
    assert "drop --model" in both.stderr
    unset = run_cli("ask", "-a", "writer", "hi", cwd=tmp_path)
    assert unset.returncode == 2
    assert "ASK_TEST_KEY is not set" in unset.stderr
    alone = run_cli("ask", "-p", "coditect.yaml", "hi", cwd=tmp_path)
    assert alone.returncode == 2
    assert "give --agent too" in alone.stderr
    assert len(stub_server.requests) == 1  # only the good call reached the server


def test_the_embedded_model_stays_the_default() -> None:
    target = model_target(None, None)
    assert (target.provider, target.chosen) == ("local", "default")
    assert isinstance(target.llm, LocalLlm)
    named = model_target(None, default_model_path())  # a .gguf path: the local provider
    assert (named.provider, named.chosen) == ("local", "model name")
    assert isinstance(named.llm, LocalLlm)


def test_a_missing_gguf_file_is_bad_input(tmp_path: Path) -> None:
    done = run_cli("ask", "-m", tmp_path / "absent.Q4.gguf", "hi")
    assert done.returncode == 2
    assert f"model file {str(tmp_path / 'absent.Q4.gguf')!r} does not exist" in done.stderr

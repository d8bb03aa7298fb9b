"""``coditect agents`` and ``coditect doctor``: what each agent is missing, and live pings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from stub_server import StubServer
from typer.testing import CliRunner

from coditect_core.app import doctor as agent_check
from coditect_core.cli.main import app

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()
CANARY = "sk-agents-canary-5e3a9d1f"


def write(tmp_path: Path, agents: dict[str, Any], task_agents: list[str]) -> Path:
    spec = {
        "project": "agents-check",
        "agents": agents,
        "tasks": [
            {"id": f"T{i}", "title": f"task {i}", "agent": name}
            for i, name in enumerate(task_agents)
        ],
    }
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def agents_json(*args: str | Path, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, [*map(str, args), "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["agents"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_agents_names_what_each_one_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("UNSET_CLAUDE_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", CANARY)
    # As if the gemini extra were not installed (the check looks for the module, never imports).
    monkeypatch.setitem(agent_check.SDK_MODULES, "google-gemini", ("no_such_sdk_x", "gemini"))
    project = write(
        tmp_path,
        {
            "fake": {"type": "custom", "provider": "fake"},
            "claude": {"type": "anthropic-claude", "api_key": "${UNSET_CLAUDE_KEY}"},
            "gpt": {"type": "openai-gpt", "model": "gpt-4o-mini"},
            "gemini": {"type": "google-gemini"},
            "tool": {"type": "custom", "interface": "cli", "command": ["no-such-cmd-q7"]},
            "off": {"type": "custom", "provider": "fake", "enabled": False},
            "plugin": {"type": "custom", "provider": "no-such-plugin"},
            "local": {"type": "local", "model": str(tmp_path / "missing.gguf")},
            "duo": {"type": "custom", "provider": "fake", "interface": "hybrid", "reviewer": "gpt"},
            "person": {"type": "custom", "interface": "interactive"},
        },
        ["fake", "gpt"],
    )
    data = agents_json("agents", project)
    agents = by_name(data)
    assert list(agents) == [
        "fake", "claude", "gpt", "gemini", "tool", "off", "plugin", "local", "duo", "person",
    ]  # fmt: skip
    usable = {name for name, a in agents.items() if a["usable"]}
    assert usable == {"fake", "person"}
    assert agents["fake"]["tasks"] == ["T0"]
    assert agents["claude"]["problems"] == ["UNSET_CLAUDE_KEY is not set"]
    assert agents["gpt"]["problems"] == ["no API key: set OPENAI_API_KEY (or api_key: in the file)"]
    assert agents["gemini"]["problems"] == [
        "the SDK is not installed: pip install 'coditect-core[gemini]' (module no_such_sdk_x)"
    ]
    assert agents["tool"]["problems"] == ["command 'no-such-cmd-q7' is not on PATH"]
    assert agents["off"]["problems"] == ["disabled (enabled: false in the file)"]
    assert "unknown provider 'no-such-plugin'" in agents["plugin"]["problems"][0]
    assert agents["local"]["problems"] == [
        f"model file {str(tmp_path / 'missing.gguf')!r} does not exist"
    ]
    assert agents["duo"]["problems"] == ["its reviewer 'gpt' is not usable"]
    plain = runner.invoke(app, ["agents", str(project)])
    assert plain.exit_code == 0
    assert "2 of 10 agents usable" in plain.stdout
    assert "gpt: no API key: set OPENAI_API_KEY" in plain.stdout
    assert CANARY not in plain.stdout + json.dumps(data)


def test_doctor_exit_code_follows_the_agents_tasks_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agents = {
        "fake": {"type": "custom", "provider": "fake"},
        "gpt": {"type": "openai-gpt"},
    }
    ok = agents_json("doctor", write(tmp_path, agents, ["fake"]))
    assert ok["ok"] is True
    assert ok["problems"] == []
    assert set(ok["extras"]) == {"anthropic", "openai", "gemini", "local", "mcp"}
    import genai_prices

    assert ok["prices"] == f"genai-prices {genai_prices.__version__} (packaged data)"
    assert ok["state"] == {
        "path": str(tmp_path / ".coditect" / "state.db"),
        "exists": False,
        "ok": True,
    }
    bad = agents_json("doctor", write(tmp_path, agents, ["fake", "gpt"]), code=1)
    assert bad["ok"] is False
    assert bad["problems"] == [
        "agent 'gpt' (1 task(s)): no API key: set OPENAI_API_KEY (or api_key: in the file)"
    ]
    plain = runner.invoke(app, ["doctor", str(tmp_path / "project.yaml")])
    assert plain.exit_code == 1
    assert "not ready: tasks use agents that are not usable: gpt (1)" in plain.stdout
    assert f"prices: genai-prices {genai_prices.__version__} (packaged data)" in plain.stdout
    assert "no known price: fake (" in plain.stdout  # the fake provider has no price
    assert {a["name"]: a["price"] for a in bad["agents"]} == {
        "fake": "unknown",
        "gpt": "genai-prices",
    }


def test_doctor_ping_calls_each_usable_agent(tmp_path: Path) -> None:
    project = write(
        tmp_path,
        {
            "fake": {"type": "custom", "provider": "fake"},
            "person": {"type": "custom", "interface": "interactive"},
        },
        ["fake", "person"],
    )
    data = agents_json("doctor", project, "--ping")
    agents = by_name(data)
    assert agents["fake"]["ping"]["ok"] is True
    assert agents["fake"]["ping"]["model"] == "fake-model"
    assert agents["person"]["ping"] is None  # a person is not pinged
    assert data["ok"] is True


def test_ping_finds_a_server_not_answering(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    project = write(
        tmp_path,
        {"ollama": {"type": "openai-compatible", "base_url": url, "model": "m"}},
        ["ollama"],
    )
    assert (
        agents_json("agents", project)["agents"][0]["usable"] is True
    )  # no network without --ping
    data = agents_json("doctor", project, "--ping", "--timeout", "2", code=1)
    agent = data["agents"][0]
    assert agent["usable"] is False
    assert agent["problems"][0].startswith(f"server not answering: nothing answers at {url}")
    assert agent["ping"] is None


def test_ping_through_a_real_sdk_to_a_loopback_server(
    tmp_path: Path, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    project = write(
        tmp_path,
        {
            "ollama": {
                "type": "openai-compatible",
                "base_url": stub_server.openai_url,
                "model": "m",
            },
            "gpt": {"type": "openai-gpt", "base_url": stub_server.openai_url, "model": "g"},
        },
        ["ollama", "gpt"],
    )
    result = runner.invoke(app, ["doctor", str(project), "--ping", "--json"])
    assert result.exit_code == 0, result.output
    agents = by_name(json.loads(result.stdout))
    for name in ("ollama", "gpt"):
        assert agents[name]["server"].startswith("HTTP ")
        assert agents[name]["ping"]["ok"] is True
    assert [r.path for r in stub_server.requests].count("/v1/chat/completions") == 2
    assert CANARY not in result.stdout + result.stderr


def test_agents_and_doctor_import_no_provider_sdk(tmp_path: Path) -> None:
    project = Path(__file__).resolve().parents[2] / "examples" / "cloud.yaml"
    script = (
        "import sys\n"
        "from coditect_core.cli.main import app\n"
        "for args in (['agents', sys.argv[1]], ['doctor', sys.argv[1]]):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "sdks = ('openai', 'anthropic', 'google.genai', 'llama_cpp', 'ray')\n"
        "sys.stderr.write('LOADED=' + ','.join(m for m in sdks if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(project)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "LOADED=" in done.stderr, done.stderr
    assert done.stderr.rsplit("LOADED=", 1)[1].strip() == ""

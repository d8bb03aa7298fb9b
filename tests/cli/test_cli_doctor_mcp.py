"""``coditect doctor`` on a project with MCP servers: the ``mcp`` extra is listed; offline, each
server's variables and command are checked; with ``--ping`` each one is started (a real MCP
server, tests/support/mcp_server.py), its tools listed, and it is stopped. A server that an agent
with tasks uses and that fails makes doctor exit 1, naming it; secrets stay masked."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from coditect_core.cli.main import app

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")
CANARY = "mcp-doctor-canary-7d1e93a2"


def write(tmp_path: Path, servers: dict[str, Any], agent_servers: list[str]) -> Path:
    spec = {
        "mcp_servers": servers,
        "agents": {
            "fake": {"type": "custom", "provider": "fake", "mcp_servers": agent_servers},
        },
        "tasks": [{"id": "T1", "title": "one", "agent": "fake"}],
    }
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def doctor(*args: str | Path, code: int) -> dict[str, Any]:
    result = runner.invoke(app, ["doctor", *map(str, args), "--json"])
    assert result.exit_code == code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_doctor_starts_each_mcp_server_with_ping(tmp_path: Path) -> None:
    project = write(
        tmp_path,
        {
            "demo": {"command": sys.executable, "args": [SERVER, "stdio"], "tools": ["add"]},
            "spare": {"command": sys.executable, "args": [SERVER, "stdio"], "prefix": ""},
        },
        ["demo"],
    )
    offline = doctor(project, code=0)
    assert offline["extras"]["mcp"] is True
    assert offline["mcp_servers"] == [
        {
            "name": "demo",
            "transport": "stdio",
            "agents": ["fake"],
            "used": True,
            "ok": True,
            "problems": [],
            "tools": None,
        },
        {
            "name": "spare",
            "transport": "stdio",
            "agents": [],
            "used": False,
            "ok": True,
            "problems": [],
            "tools": None,
        },
    ]
    pinged = doctor(project, "--ping", code=0)
    tools = {m["name"]: m["tools"] for m in pinged["mcp_servers"]}
    assert tools["demo"] == ["demo__add"]
    assert "echo" in tools["spare"]
    plain = runner.invoke(app, ["doctor", str(project), "--ping"])
    assert plain.exit_code == 0, plain.output
    assert "MCP server demo (stdio, fake): ok: 1 tools: demo__add" in plain.stdout


def test_a_failing_server_of_a_used_agent_fails_doctor(tmp_path: Path) -> None:
    project = write(
        tmp_path,
        {
            "broken": {
                "command": sys.executable,
                "args": [SERVER, "crash"],
                "env": {"TEST_MCP_TOKEN": CANARY},
            },
            "ghost": {"command": "no-such-mcp-server-xyz"},
        },
        ["broken"],
    )
    offline = doctor(project, code=0)  # offline, broken's command is there; ghost is nobody's
    servers = {m["name"]: m for m in offline["mcp_servers"]}
    assert servers["broken"]["ok"] is True  # offline: its command is there
    assert servers["ghost"]["problems"] == ["command 'no-such-mcp-server-xyz' is not on PATH"]
    assert offline["problems"] == []

    result = runner.invoke(app, ["doctor", str(project), "--ping", "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    broken = {m["name"]: m for m in data["mcp_servers"]}["broken"]
    assert broken["problems"][0].startswith("MCP server 'broken' did not start: ")
    assert data["problems"][0].startswith("MCP server 'broken' (of fake): MCP server 'broken'")
    assert CANARY not in result.stdout + result.stderr


def test_an_unset_variable_of_a_server_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCS_TEST_TOKEN", raising=False)
    project = write(
        tmp_path,
        {"docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "${DOCS_TEST_TOKEN}"}}},
        ["docs"],
    )
    data = doctor(project, code=1)
    docs = data["mcp_servers"][0]
    assert (
        "mcp_servers.docs.headers.X-Key: environment variable DOCS_TEST_TOKEN is not set"
        in (docs["problems"][0])
    )
    assert data["problems"][0].startswith("MCP server 'docs' (of fake): ")

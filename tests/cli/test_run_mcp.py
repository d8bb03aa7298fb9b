"""``coditect run`` end to end with an MCP server: a real ``coditect run`` subprocess whose agent
(a scripted FakeLlm) calls a tool of a real stdio MCP server declared under ``mcp_servers:``; the
task's output uses the tool's answer, ``coditect show --json`` has the call, and the server's
process is gone after the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)
SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")

DRIVER = """
from coditect_core.cli.main import main
from coditect_core.llm_abstractions.registry import register_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall


def script(messages):
    answers = [m["content"] for m in messages if m["role"] == "tool"]
    if not answers:
        return [ToolCall("c1", "demo__add", {"a": 2, "b": 3}), ToolCall("c2", "demo__pid", {})]
    return f"The sum is {answers[0]}; the server was {answers[1]}."


class Scripted(FakeLlm):
    provider = "scripted-mcp"

    def __init__(self, *args, **kwargs):
        kwargs["default"] = script
        super().__init__(*args, **kwargs)


register_llm("scripted-mcp", Scripted)
main()
"""

PROJECT = f"""\
project: mcprun
mcp_servers:
  demo:
    command: "{sys.executable}"
    args: ["{SERVER}", stdio]
    tools: [add, pid]
agents:
  calc: {{type: custom, provider: scripted-mcp, mcp_servers: [demo]}}
tasks:
  - {{id: T1, title: Add, description: Add 2 and 3 with the tool.}}
"""


def test_coditect_run_calls_an_mcp_servers_tool(tmp_path: Path) -> None:
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "coditect.yaml").write_text(PROJECT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(tmp_path / "driver.py"), *args],
            cwd=tmp_path,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )

    run = cli("run", "coditect.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    shown = cli("show", "coditect.yaml", "T1", "--json")
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert task["status"] == "completed"
    output = task["output"]
    assert output.startswith("The sum is 5; the server was ")
    pid = int(output.rsplit(" ", 1)[1].rstrip("."))
    deadline = time.monotonic() + 10
    while True:  # the run is over: its server too
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"the MCP server {pid} outlived the run"
        time.sleep(0.05)

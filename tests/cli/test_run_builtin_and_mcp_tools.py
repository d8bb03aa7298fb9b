"""End to end through a real ``coditect run`` subprocess: a task whose (scripted) agent reads a
workspace file with ``read_file``, runs an allowed command with ``run_command`` (``python -c``),
calls a tool of a real stdio MCP server (tests/support/mcp_server.py), then answers; the run
exits 0 and ``coditect show`` prints each turn's call and result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")

DRIVER = """
from coditect_core.cli.main import main
from coditect_core.llm_abstractions.registry import register_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall
import sys

STEPS = [
    ToolCall("c1", "read_file", {"path": "data.txt"}),
    ToolCall("c2", "run_command", {"argv": [sys.executable, "-c", "print('cmd says', 6 * 7)"]}),
    ToolCall("c3", "demo__add", {"a": 40, "b": 2}),
]


def script(messages):
    done = sum(1 for m in messages if m["role"] == "tool")
    if done < len(STEPS):
        return [STEPS[done]]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    return "ALL DONE: " + " | ".join(r.replace(chr(10), " ") for r in results)


class Scripted(FakeLlm):
    provider = "scripted-e2e"

    def __init__(self, *args, **kwargs):
        kwargs["default"] = script
        super().__init__(*args, **kwargs)


register_llm("scripted-e2e", Scripted)
main()
"""

PROJECT = f"""\
project: e2etools
mcp_servers:
  demo:
    command: {sys.executable}
    args: [{SERVER}, stdio]
    tools: [add]
agents:
  bot:
    type: custom
    provider: scripted-e2e
    tools: [read_file, run_command]
    allow_commands: [[{sys.executable}, -c]]
    mcp_servers: [demo]
tasks:
  - {{id: T1, title: read run and ask}}
"""


def test_a_run_reads_a_file_runs_a_command_and_calls_an_mcp_tool(tmp_path: Path) -> None:
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "coditect.yaml").write_text(PROJECT)
    (tmp_path / "data.txt").write_text("the secret number is in the file\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(tmp_path / "driver.py"), *args],
            cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=180,
            check=False,
        )  # fmt: skip

    run = cli("run", "coditect.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    shown = cli("show", "coditect.yaml", "T1", "--full")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for n in (1, 2, 3):
        assert f"turn {n}" in out
    assert "read_file(" in out
    assert "the secret number is in the file" in out
    assert "run_command(" in out
    assert "cmd says 42" in out
    assert 'demo__add({"a": 40, "b": 2})' in out
    assert "ALL DONE:" in out

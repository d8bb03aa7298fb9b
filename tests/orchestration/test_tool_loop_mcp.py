"""A task on an agent with an MCP server runs the agent loop with the server's tools: the server
(a real one, tests/support/mcp_server.py over stdio) is started for the task and stopped after;
the project file's mcp_servers reach the executor (app.session.build_executor); a server that
does not start fails the task with an error naming it."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coditect_core.app.session import build_executor
from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.llm_abstractions.tool_types import ToolCall
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionStatus,
    TaskExecutor,
)
from coditect_core.project import parse_project_file
from coditect_core.tools.mcp import McpServerSpec, McpToolset

pytestmark = pytest.mark.timeout(120)
SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")
FAST = RetryPolicy(max_attempts=1, initial_delay=0.0, max_delay=0.0)
TASK = AgentTask("T1", "the task", "Add 2 and 3.", agent="a")


async def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


def agent(replies: list[Any]) -> AgentConfig:
    options = {"replies": list(replies), "retry": FAST}
    return AgentConfig("a", "custom", provider="fake", provider_options=options)


def server(mode: str = "stdio") -> McpServerSpec:
    return McpServerSpec("demo", command=sys.executable, args=(SERVER, mode), tools=("add", "pid"))


async def test_an_agent_calls_an_mcp_tool_and_the_server_is_stopped(tmp_path: Path) -> None:
    replies = [
        [ToolCall("c1", "demo__add", {"a": 2, "b": 3}), ToolCall("c2", "demo__pid", {})],
        "It is 5.",
    ]
    executor = TaskExecutor(
        AgentRegistry([agent(replies)]),
        workspace=tmp_path,
        mcp_servers={"a": {"demo": functools.partial(McpToolset, server())}},
    )
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "It is 5."
    calls = {c["name"]: c for c in result.metadata["agent_loop"]["calls"]}
    assert calls["demo__add"]["result"] == "5"
    assert calls["demo__add"]["toolset"] == "demo"
    pid = int(calls["demo__pid"]["result"])
    assert await gone(pid)  # stopped when the task ended
    await executor.aclose()


async def test_a_server_that_does_not_start_fails_the_task_naming_it(tmp_path: Path) -> None:
    executor = TaskExecutor(
        AgentRegistry([agent(["never asked"])]),
        workspace=tmp_path,
        mcp_servers={"a": {"demo": functools.partial(McpToolset, server("crash"))}},
    )
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "MCP server 'demo' did not start" in (result.error or "")
    await executor.aclose()


def test_the_project_files_servers_reach_the_executor(tmp_path: Path) -> None:
    text = f"""\
mcp_servers:
  demo: {{command: "{sys.executable}", args: ["{SERVER}", stdio]}}
agents:
  a: {{type: custom, provider: fake, mcp_servers: [demo]}}
  b: {{type: custom, provider: fake}}
tasks:
  - {{id: T1, title: t, agent: a}}
"""
    project = parse_project_file(text, str(tmp_path / "p.yaml")).resolve(environ={})
    executor = build_executor(project)
    assert list(executor.mcp_servers) == ["a"]
    toolset = executor.mcp_servers["a"]["demo"]()
    assert isinstance(toolset, McpToolset)
    assert toolset.spec == project.mcp_servers["demo"]

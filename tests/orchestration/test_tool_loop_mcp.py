"""A task whose agent's MCP server does not start (a real one, tests/support/mcp_server.py, that
crashes at start) fails with an error naming the server, before any model call. (The server's
tools in the loop, and its process gone after the task: tests/app/test_mcp_wiring.py.)"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import pytest

from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionStatus,
    TaskExecutor,
)
from coditect_core.tools.mcp import McpServerSpec, McpToolset

pytestmark = pytest.mark.timeout(120)
SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")
FAST = RetryPolicy(max_attempts=1, initial_delay=0.0, max_delay=0.0)
TASK = AgentTask("T1", "the task", "Add 2 and 3.", agent="a")


def agent(replies: list[Any]) -> AgentConfig:
    options = {"replies": list(replies), "retry": FAST}
    return AgentConfig("a", "custom", provider="fake", provider_options=options)


def server(mode: str = "stdio") -> McpServerSpec:
    return McpServerSpec("demo", command=sys.executable, args=(SERVER, mode), tools=("add", "pid"))


async def test_a_server_that_does_not_start_fails_the_task_naming_it(tmp_path: Path) -> None:
    executor = TaskExecutor(
        AgentRegistry([agent(["never asked"])]),
        workspace=tmp_path,
        mcp_servers={"a": {"demo": functools.partial(McpToolset, server("crash"))}},
    )
    result = await executor.execute(TASK)
    assert executor.get_llm("a").calls == []  # type: ignore[attr-defined]
    assert result.status is ExecutionStatus.FAILED
    assert "MCP server 'demo' did not start" in (result.error or "")
    await executor.aclose()

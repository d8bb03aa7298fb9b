"""MCP servers in the agent loop: an api agent with ``mcp_servers:`` (and no ``tools:``) runs the
loop; its task opens the project's real stdio MCP server (tests/support/mcp_server.py), the
scripted model calls one of its tools and answers with the result, and the server's process is
gone after the task. The factories come from the session (Project.mcp_factories through
build_executor): orchestration never reads the project file."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect_core.app.session import build_executor
from coditect_core.errors import ToolsetError
from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall
from coditect_core.orchestration import ExecutionStatus
from coditect_core.project import read_project_file

SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")


def _script(messages: list[Message]) -> str | list[ToolCall]:
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return [ToolCall("c1", "demo__pid", {})]
    return "server pid " + results[-1]["content"]


class CallsMcp(FakeLlm):
    provider = "calls-mcp"

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["default"] = _script
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _provider() -> Iterator[None]:
    register_llm("calls-mcp", CallsMcp, replace=True)
    yield
    unregister_llm("calls-mcp")


PROJECT = f"""\
project: mcpwiring
mcp_servers:
  demo:
    command: {sys.executable}
    args: [{SERVER}, stdio]
    tools: [pid, add]
agents:
  bot:
    type: custom
    provider: calls-mcp
    mcp_servers: [demo]
tasks:
  - {{id: T1, title: ask the server}}
"""


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


async def test_an_agent_with_mcp_servers_calls_a_real_server_and_it_is_gone_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "coditect.yaml"
    path.write_text(PROJECT)
    project = read_project_file(path).resolve(environ=dict(os.environ))
    executor = build_executor(project)
    result = await executor.execute(project.task("T1"))
    assert result.status is ExecutionStatus.SUCCESS, result.error
    output = result.output or ""
    assert output.startswith("server pid ")
    pid = int(output.removeprefix("server pid "))
    assert pid != os.getpid()
    assert gone(pid), "the MCP server's process outlived its task"
    offered = executor.get_llm("bot").calls[0].params.tools  # type: ignore[attr-defined]
    assert sorted(tool.name for tool in offered) == ["demo__add", "demo__pid"]
    (call,) = result.metadata["agent_loop"]["calls"]
    assert (call["name"], call["toolset"]) == ("demo__pid", "demo")


def test_an_unresolved_server_fails_only_when_its_factory_is_called(tmp_path: Path) -> None:
    path = tmp_path / "coditect.yaml"
    path.write_text(PROJECT)
    project = read_project_file(path).resolve(environ=dict(os.environ))
    project.mcp_servers.clear()  # as when a fallback agent's variable was unset
    factories = project.mcp_factories()
    assert list(factories) == ["bot"]
    with pytest.raises(ToolsetError, match="'demo' of agent 'bot' is not available"):
        factories["bot"]["demo"]()

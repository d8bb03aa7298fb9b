"""A task on an api agent with tools runs the agent loop (orchestration/tool_loop.py): every turn
through the agent's pipeline (usage and cost summed), bounds and bad tool entries fail the task
with a message that says so, a provider without tools is refused before any call, and the budget
stops the loop before the call that would pass it (the run's stop reason: budget)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coditect_core.llm_abstractions.pricing import Price, PriceBook
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionStatus,
    ProjectOrchestrator,
    TaskExecutor,
)
from coditect_core.orchestration.spend import Budget

FAST = RetryPolicy(max_attempts=1, initial_delay=0.0, max_delay=0.0)
TASK = AgentTask("T1", "the task", "Add 2 and 3.", agent="a")
MODULE = '''
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
'''


class NoTools(FakeLlm):
    supports_tools = False


@pytest.fixture(autouse=True)
def _providers() -> Any:
    register_llm("fake-no-tools", NoTools, replace=True)
    yield
    unregister_llm("fake-no-tools")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "looptools_mod.py").write_text(MODULE)
    return tmp_path


def agent(replies: list[Any], provider: str = "fake", **kw: Any) -> AgentConfig:
    options = {"replies": list(replies), "retry": FAST}
    kw.setdefault("tools", ["looptools_mod:add"])
    return AgentConfig("a", "custom", provider=provider, provider_options=options, **kw)


def add_call(i: int = 1) -> list[ToolCall]:
    return [ToolCall(f"c{i}", "add", {"a": 2, "b": 3})]


async def test_a_task_calls_a_tool_and_its_answer_is_the_output(workspace: Path) -> None:
    executor = TaskExecutor(AgentRegistry([agent([add_call(), "It is 5."])]), workspace=workspace)
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "It is 5."
    loop = result.metadata["agent_loop"]
    assert loop["turns"] == 2
    assert loop["tool_calls"] == 1
    (call,) = loop["calls"]
    assert call["name"] == "add"
    assert call["result"] == "5"
    assert call["arguments"] == '{"a": 2, "b": 3}'
    assert result.attempts == 2  # two requests, one per turn
    fake = executor.get_llm("a")
    assert len(fake.calls) == 2  # type: ignore[attr-defined]
    assert result.usage is not None
    assert result.usage.total_tokens > 0


async def test_max_turns_fails_the_task_saying_so(workspace: Path) -> None:
    replies = [add_call(i) for i in range(5)]
    executor = TaskExecutor(AgentRegistry([agent(replies, max_turns=2)]), workspace=workspace)
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "max_turns (2)" in str(result.error)
    assert len(executor.get_llm("a").calls) == 2  # type: ignore[attr-defined]


async def test_a_provider_without_tools_is_refused_before_any_call(workspace: Path) -> None:
    executor = TaskExecutor(
        AgentRegistry([agent(["never"], provider="fake-no-tools")]), workspace=workspace
    )
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "cannot call tools" in str(result.error)
    assert "'a'" in str(result.error)
    assert executor.get_llm("a").calls == []  # type: ignore[attr-defined]


async def test_a_tool_entry_that_does_not_import_fails_the_task_naming_it(
    workspace: Path,
) -> None:
    bad = agent(["never"], tools=["nowhere_mod:add"])
    executor = TaskExecutor(AgentRegistry([bad]), workspace=workspace)
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "'nowhere_mod:add'" in str(result.error)
    assert executor.get_llm("a").calls == []  # type: ignore[attr-defined]


async def test_the_budget_stops_the_loop_before_the_call_that_would_pass_it(
    workspace: Path,
) -> None:
    replies = [add_call(i) for i in range(20)]
    prices = PriceBook({"a": Price(1_000.0, 1_000.0)})  # USD 0.001 a token
    looping = agent(replies, max_tokens=50, max_turns=50)
    executor = TaskExecutor(AgentRegistry([looping]), prices=prices, workspace=workspace)
    budget = Budget(max_cost_usd=0.5)  # 500 tokens
    orchestrator = ProjectOrchestrator(executor=executor, budget=budget)
    orchestrator.add_tasks([TASK, AgentTask("T2", "next", "Go.", agent="a")])
    summary = await orchestrator.run(max_concurrency=1)
    result = orchestrator.get_result("T1")
    assert result is not None
    assert result.status is ExecutionStatus.FAILED
    assert "budget" in str(result.error)
    assert "max_cost_usd" in str(result.error)
    assert summary.stop_reason == "budget"
    assert summary.unstarted == ["T2"]
    calls = len(executor.get_llm("a").calls)  # type: ignore[attr-defined]
    assert 1 <= calls < 20
    # stopped before, not after: what was spent stays under the limit
    assert summary.cost["cost_known_usd"] <= 0.5


async def test_a_builtin_file_tool_reads_the_workspace(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("the answer is 42\n")
    read = [ToolCall("r1", "read_file", {"path": "notes.txt"})]
    reader = agent([read, "42"], tools=["read_file"])
    executor = TaskExecutor(AgentRegistry([reader]), workspace=workspace)
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    (call,) = result.metadata["agent_loop"]["calls"]
    assert call["name"] == "read_file"
    assert "the answer is 42" in call["result"]
    assert call["is_error"] is False


async def test_an_agent_with_mcp_servers_only_runs_the_loop_on_their_tools(
    workspace: Path,
) -> None:
    from coditect_core.tools import FunctionToolset

    def forecast(city: str) -> str:
        """The weather."""
        return f"sun in {city}"

    opened: list[str] = []

    def server() -> FunctionToolset:
        opened.append("weather")
        return FunctionToolset([forecast], name="weather")

    asked = [ToolCall("w1", "forecast", {"city": "Oslo"})]
    weather = agent([asked, "Sunny."], tools=[])
    executor = TaskExecutor(
        AgentRegistry([weather]), workspace=workspace, mcp_servers={"a": {"weather": server}}
    )
    result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert opened == ["weather"]
    assert result.metadata["agent_loop"]["calls"][0]["result"] == "sun in Oslo"

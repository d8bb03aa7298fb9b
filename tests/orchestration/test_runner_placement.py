"""Runners place an agent's requests: the executor builds each agent's pipeline on what
``Runner.open`` returns, once per agent; command agents always run in this process."""

from __future__ import annotations

import sys
from pathlib import Path

from coditect_core.llm_abstractions import FakeLlm
from coditect_core.llm_abstractions.base_llm import BaseLlm
from coditect_core.llm_abstractions.command import CommandLlm
from coditect_core.llm_abstractions.spec import LlmSpec
from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask, TaskExecutor
from coditect_core.orchestration.runners import LocalRunner, Runner


class Elsewhere(Runner):
    """Places every request on a fake of its own, and says what it was asked to place."""

    name = "elsewhere"

    def __init__(self) -> None:
        self.opened: list[tuple[str, type[BaseLlm], str | None]] = []

    def open(self, agent: AgentConfig, spec: LlmSpec) -> BaseLlm:
        self.opened.append((agent.name, spec.cls, spec.model))
        return FakeLlm(default="placed elsewhere")


async def test_the_runner_opens_each_agents_llm_once_and_its_requests_go_there() -> None:
    runner = Elsewhere()
    registry = AgentRegistry([AgentConfig("a", "custom", provider="fake", model="m-1")])
    executor = TaskExecutor(registry, runner=runner)
    first = await executor.execute(AgentTask("T1", "t", "d"), "a")
    second = await executor.execute(AgentTask("T2", "t", "d"), "a")
    assert (first.output, second.output) == ("placed elsewhere", "placed elsewhere")
    assert runner.opened == [("a", FakeLlm, "m-1")]  # the factory's class, the agent's model
    assert first.cost_usd is None  # still priced on this side: the fake has no price
    await executor.aclose()


async def test_command_agents_run_here_whatever_the_runner(tmp_path: Path) -> None:
    echo = tmp_path / "echo.py"
    echo.write_text("import sys; print('here: ' + str(len(sys.stdin.read()) > 0))")
    runner = Elsewhere()
    registry = AgentRegistry(
        [AgentConfig("cli", "custom", interface="cli", command=[sys.executable, str(echo)])]
    )
    executor = TaskExecutor(registry, runner=runner)
    result = await executor.execute(AgentTask("T1", "t", "d"), "cli")
    assert result.succeeded, result.error
    assert result.output == "here: True"  # (the prompt came on its stdin)
    assert isinstance(executor.get_llm("cli"), CommandLlm)
    assert runner.opened == []
    await executor.aclose()


async def test_the_local_runner_builds_the_factory_class_here() -> None:
    executor = TaskExecutor(AgentRegistry([AgentConfig("a", "custom", provider="fake")]))
    assert isinstance(executor.runner, LocalRunner)
    result = await executor.execute(AgentTask("T1", "t", "d"), "a")
    assert result.output == "fake reply to: # Task T1: t\n\nd"
    assert type(executor.get_llm("a")) is FakeLlm
    await executor.aclose()

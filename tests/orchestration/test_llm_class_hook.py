"""TaskExecutor.llm_class_hook: a runner's way to swap the class an agent's LLM is built with."""

from __future__ import annotations

from coditect_core.llm_abstractions import FakeLlm
from coditect_core.llm_abstractions.base_llm import BaseLlm
from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask, TaskExecutor


class Marked(FakeLlm):
    """What the hook builds instead: the same fake, with its own reply."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, default="placed elsewhere", **kwargs)  # type: ignore[arg-type]


async def test_the_hook_chooses_the_class_and_sees_the_agent_and_the_factory_choice() -> None:
    executor = TaskExecutor(AgentRegistry([AgentConfig("a", "custom", provider="fake")]))
    seen: list[tuple[str, type[BaseLlm]]] = []

    def hook(agent: AgentConfig, cls: type[BaseLlm]) -> type[BaseLlm]:
        seen.append((agent.name, cls))
        return Marked

    executor.llm_class_hook = hook
    first = await executor.execute(AgentTask("T1", "t", "d"), "a")
    second = await executor.execute(AgentTask("T2", "t", "d"), "a")
    assert (first.output, second.output) == ("placed elsewhere", "placed elsewhere")
    assert seen == [("a", FakeLlm)]  # one LLM per agent, built once
    await executor.aclose()


async def test_without_a_hook_the_factory_class_is_used() -> None:
    executor = TaskExecutor(AgentRegistry([AgentConfig("a", "custom", provider="fake")]))
    result = await executor.execute(AgentTask("T1", "t", "d"), "a")
    assert result.output == "fake reply to: # Task T1: t\n\nd"
    await executor.aclose()

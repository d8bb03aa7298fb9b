"""TaskExecutor.warm_up: which agents get their LLM client made before a run's first call."""

from __future__ import annotations

from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask, TaskExecutor


def fake(name: str, **options: object) -> AgentConfig:
    return AgentConfig(name, "custom", provider="fake", **options)  # type: ignore[arg-type]


def registry() -> AgentRegistry:
    return AgentRegistry(
        [
            fake("writer", fallbacks=["spare"], capabilities=["documentation"]),
            fake("spare"),
            fake("coder", capabilities=["code"]),
            fake("off", enabled=False),
            fake("idle"),
        ]
    )


async def test_named_agents_their_fallbacks_and_the_default_are_warmed_once_each() -> None:
    executor = TaskExecutor(registry(), default_agent="coder")
    tasks = [AgentTask(f"T{i}", "t", "d", agent="writer") for i in range(50)]
    tasks += [AgentTask(f"U{i}", "t", "d") for i in range(50)]  # no agent: the default's
    tasks += [AgentTask("V", "t", "d", agent="off"), AgentTask("W", "t", "d", agent="ghost")]
    ready = await _warm(executor, tasks)
    assert ready == ["writer", "coder", "spare"]  # "off" is disabled, "ghost" unknown
    assert "idle" not in ready
    assert executor.ready_agents() == ["writer", "coder", "spare"]  # built: no others
    await executor.aclose()


async def test_without_a_default_an_agent_is_guessed_from_the_tags() -> None:
    executor = TaskExecutor(registry())
    tasks = [AgentTask("T", "t", "d", tags=["code"]), AgentTask("U", "t", "d", tags=["nothing"])]
    assert await _warm(executor, tasks) == ["coder"]
    await executor.aclose()


async def _warm(executor: TaskExecutor, tasks: list[AgentTask]) -> list[str]:
    return executor.warm_up(tasks)  # (needs the running loop: the clients belong to it)

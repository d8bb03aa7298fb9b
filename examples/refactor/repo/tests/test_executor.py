import pytest
from taskexec.agents import AgentConfig, AgentRegistry, AgentType
from taskexec.executor import TaskExecutor


def registry() -> AgentRegistry:
    agents = AgentRegistry()
    agents.register(AgentConfig("echo", AgentType.ECHO))
    agents.register(AgentConfig("gpt", AgentType.GPT, model="gpt-4o-mini"))
    return agents


def test_an_echo_task_succeeds() -> None:
    result = TaskExecutor(registry()).execute("T1", "hello", "echo")
    assert (result.status, result.output) == ("success", "HELLO")


def test_a_network_agent_fails_here() -> None:
    result = TaskExecutor(registry()).execute("T2", "hello", "gpt")
    assert result.status == "failed"
    assert result.error


def test_the_registry_refuses_a_second_agent_of_one_name() -> None:
    agents = registry()
    with pytest.raises(ValueError, match="already registered"):
        agents.register(AgentConfig("echo", AgentType.ECHO))

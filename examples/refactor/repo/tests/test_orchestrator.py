from taskexec.agents import AgentConfig, AgentRegistry, AgentType
from taskexec.executor import TaskExecutor
from taskexec.orchestrator import ProjectOrchestrator


def test_the_orchestrator_keeps_each_result() -> None:
    agents = AgentRegistry()
    agents.register(AgentConfig("echo", AgentType.ECHO))
    orchestrator = ProjectOrchestrator(TaskExecutor(agents))
    result = orchestrator.execute_task("T1", "hello", "echo")
    assert result.output == "HELLO"
    assert orchestrator.results["T1"] is result

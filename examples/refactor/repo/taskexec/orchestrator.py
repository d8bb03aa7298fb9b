"""ProjectOrchestrator: runs tasks in order through the executor."""

from __future__ import annotations

from .executor import ExecutionResult, TaskExecutor


class ProjectOrchestrator:
    def __init__(self, executor: TaskExecutor) -> None:
        self.executor = executor
        self.results: dict[str, ExecutionResult] = {}

    def execute_task(self, task_id: str, prompt: str, agent: str) -> ExecutionResult:
        result = self.executor.execute(task_id, prompt, agent)
        self.results[task_id] = result
        return result

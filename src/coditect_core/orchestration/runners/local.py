"""``LocalRunner``: the default runner; a task's call runs in this process, on its event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .base import Runner

if TYPE_CHECKING:
    from ..agent_registry import AgentInterface
    from ..execution_result import ExecutionResult
    from ..executor import TaskExecutor, Upstream
    from ..task import AgentTask

__all__ = ["LocalRunner"]


class LocalRunner(Runner):
    """Awaits the executor directly: no process hop, no serialisation."""

    name: ClassVar[str] = "local"

    async def execute(
        self,
        executor: TaskExecutor,
        task: AgentTask,
        agent: str | None = None,
        mode: AgentInterface | str | None = None,
        *,
        upstream: Upstream = None,
        **options: Any,
    ) -> ExecutionResult:
        return await executor.execute(task, agent, mode, upstream=upstream, **options)

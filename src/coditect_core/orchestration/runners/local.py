"""``LocalRunner``: the default runner; a task's call runs in this process, on its event loop."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from .base import Runner

if TYPE_CHECKING:
    from ..agent_registry import AgentInterface
    from ..execution_result import ExecutionResult
    from ..executor import TaskExecutor, Upstream
    from ..task import AgentTask

__all__ = ["LocalRunner"]


class LocalRunner(Runner):
    """Hands over the executor's own coroutine: no process hop, no serialisation, no frame."""

    name: ClassVar[str] = "local"

    def execute(  # the executor's coroutine itself, not one wrapping it: one frame less
        self,
        executor: TaskExecutor,
        task: AgentTask,
        agent: str | None = None,
        mode: AgentInterface | str | None = None,
        *,
        upstream: Upstream = None,
        **options: Any,
    ) -> Coroutine[Any, Any, ExecutionResult]:
        return executor.execute(task, agent, mode, upstream=upstream, **options)

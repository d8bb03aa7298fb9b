"""The runner interface: where a task's calls execute.

:class:`~coditect_core.orchestration.orchestrator.ProjectOrchestrator` decides *what* runs and
*when* (dependencies, priorities, concurrency caps, budgets) and records every state change on the
driver; it hands each execution of a task to its :class:`Runner`, which decides *where* the work
happens: in this process (:class:`~.local.LocalRunner`, the default, which just awaits
:meth:`TaskExecutor.execute`) or with every model request sent to a Ray cluster
(:class:`~.ray.RayRunner`). A runner never writes state: it returns the
:class:`ExecutionResult`, and the orchestrator records it.

:func:`make_runner` builds one by name (``"local"`` or ``"ray"``), as the project file's
``runner:`` and ``coditect run --runner`` name them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import RunnerError

if TYPE_CHECKING:
    from ..agent_registry import AgentInterface
    from ..execution_result import ExecutionResult
    from ..executor import TaskExecutor, Upstream
    from ..task import AgentTask

__all__ = ["RUNNER_NAMES", "Runner", "make_runner"]

RUNNER_NAMES = ("local", "ray")
"""The runners :func:`make_runner` knows, by name."""


class Runner(ABC):
    """Runs one task's call for the orchestrator and hands back its result.

    :meth:`execute` has the contract of :meth:`TaskExecutor.execute`: it never raises except on
    cancellation (every failure is a FAILED result), and cancelling it cancels the call.
    """

    name: ClassVar[str]

    @abstractmethod
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
        """Run ``task`` as ``executor.execute(task, agent, mode, upstream=upstream, **options)``
        would (``options``: whatever else the executor takes, passed through)."""

    async def start(self, executor: TaskExecutor | None = None) -> None:  # noqa: B027
        """Get ready before the first call (connect to a cluster, warm ``executor``'s agents
        up there...); optional (empty here), idempotent."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """Release what the runner holds (workers, actors, a cluster connection it made)."""

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def make_runner(
    name: str | None = None,
    *,
    address: str | None = None,
    resources: Mapping[str, Any] | None = None,
    **options: Any,
) -> Runner:
    """The runner called ``name`` (default ``"local"``).

    ``address`` (the Ray cluster; else ``RAY_ADDRESS``, else a new local Ray) and ``resources``
    (agent name -> ``num_cpus``/``num_gpus``, a mapping or an object with those fields) are for
    ``"ray"``, and ignored by ``"local"``; other ``options`` go to :class:`~.ray.RayRunner`.
    :class:`RunnerError` for an unknown name.
    """
    name = name or "local"
    if name == "local":
        from .local import LocalRunner

        if options:
            raise RunnerError(f"the local runner takes no options, got {', '.join(options)}")
        return LocalRunner()
    if name == "ray":
        from .ray import RayRunner

        return RayRunner(address, resources=resources, **options)
    raise RunnerError(f"unknown runner {name!r}; expected one of {', '.join(RUNNER_NAMES)}")

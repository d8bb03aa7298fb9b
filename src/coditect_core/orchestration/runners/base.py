"""The runner interface: where an agent's requests to its model run.

A runner is to the request pipeline what a transport is to an httpx client: the executor builds
each agent's pipeline (retries, limits, pricing) on the driver, on top of the LLM that
:meth:`Runner.open` returns, and that LLM makes the requests wherever the runner puts them: in
this process (:class:`~.local.LocalRunner`, the default) or on a Ray cluster
(:class:`~.ray.RayRunner`). A runner never decides what runs or when, and never writes state.

``make_runner`` (in the package) builds one by name, as the project file's ``runner:`` and
``coditect run --runner`` name them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ...llm_abstractions.base_llm import BaseLlm
    from ...llm_abstractions.spec import LlmSpec
    from ..agent_registry import AgentConfig
    from ..executor import TaskExecutor

__all__ = ["RUNNER_NAMES", "Runner"]

RUNNER_NAMES = ("local", "ray")
"""The runners ``make_runner`` knows, by name."""


class Runner(ABC):
    """Places the requests of each agent's LLM."""

    name: ClassVar[str]

    @abstractmethod
    def open(self, agent: AgentConfig, spec: LlmSpec) -> BaseLlm:
        """The LLM that makes ``agent``'s requests, built from ``spec``: here, or a stand-in
        that sends each request elsewhere. Raises what building the LLM raises (bad settings,
        no key) when that can be known here."""

    def check(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """Make sure, quickly and before anything is written, that the requests can go where
        this runner sends them (a cluster answers, lets this driver in); raise
        :class:`~coditect_core.errors.RunnerError` saying why not. Optional (empty here)."""

    async def start(self, executor: TaskExecutor | None = None) -> None:  # noqa: B027
        """Get ready before the first request (connect to a cluster, make ``executor``'s
        agents' clients there); optional (empty here), idempotent."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """Release what the runner holds (workers, actors, a cluster connection it made)."""

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

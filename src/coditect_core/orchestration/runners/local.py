"""``LocalRunner``: the default runner; an agent's requests run in this process, on its loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import Runner

if TYPE_CHECKING:
    from ...llm_abstractions.base_llm import BaseLlm
    from ...llm_abstractions.spec import LlmSpec
    from ..agent_registry import AgentConfig

__all__ = ["LocalRunner"]


class LocalRunner(Runner):
    """Builds each agent's LLM here: its requests are this process's own."""

    name: ClassVar[str] = "local"

    def open(self, agent: AgentConfig, spec: LlmSpec) -> BaseLlm:
        return spec.build()

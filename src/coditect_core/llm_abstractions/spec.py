"""``LlmSpec``: how to build one LLM (its class and constructor arguments), to build it elsewhere.

A runner that places requests in another process (a Ray worker) sends the spec once and builds
the LLM there. The key, if any, travels as a :class:`~coditect_core.secrets.Secret` (masked
``repr``) and is registered as a secret of the process that builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..secrets import Secret, register_secret
from .base_llm import BaseLlm

__all__ = ["LlmSpec"]


@dataclass(frozen=True, slots=True)
class LlmSpec:
    """``cls(model=model, api_key=api_key, **settings)``, to be made where it is needed."""

    cls: type[BaseLlm]
    model: str | None = None
    api_key: Secret | None = field(default=None, repr=False)
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def build(self) -> BaseLlm:
        """The LLM. Raises what its constructor raises (bad settings, no key...)."""
        key = self.api_key.get() if self.api_key else None
        register_secret(key)
        return self.cls(model=self.model, api_key=key, **self.settings)

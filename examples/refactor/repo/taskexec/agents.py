"""Agents: what kind of model each one is, and the registry that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class AgentType(Enum):
    GEMINI = "google-gemini"
    CLAUDE = "anthropic-claude"
    GPT = "openai-gpt"
    ECHO = "echo"


@dataclass
class AgentConfig:
    name: str
    agent_type: AgentType
    model: str | None = None
    api_key: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    capabilities: list[str] = field(default_factory=list)


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, AgentConfig] = {}

    def register(self, agent: AgentConfig) -> None:
        if agent.name in self._agents:
            raise ValueError(f"agent {agent.name!r} is already registered")
        self._agents[agent.name] = agent

    def get(self, name: str) -> AgentConfig:
        try:
            return self._agents[name]
        except KeyError:
            raise KeyError(f"unknown agent {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._agents)

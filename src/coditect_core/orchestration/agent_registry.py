"""Agents: who can work on a task (``AgentConfig``) and the registry that finds them.

An agent is a named configuration: which backend (``AgentType``), how it is reached
(``AgentInterface``), which model, key, prompt and limits it uses, and what it is good at
(``AgentCapability``). The ``AgentType`` values are the provider names of
:mod:`coditect_core.llm_abstractions.registry`; a ``custom`` agent names its provider in
``provider`` (a plugin, or ``"fake"`` in tests).

The API key is held as a :class:`~coditect_core.llm_abstractions.keys.Secret`: it never appears
in ``repr``, in :meth:`AgentConfig.to_dict` or in an error message.
"""

from __future__ import annotations

import builtins
import logging
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, TypeVar

from ..errors import AgentError
from ..llm_abstractions.keys import Secret
from ._coerce import coerce_enum
from .task import AgentTask

__all__ = [
    "AgentCapability",
    "AgentConfig",
    "AgentInterface",
    "AgentRegistry",
    "AgentType",
]

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Enum)


class AgentType(StrEnum):
    """The backend an agent runs on. Values are provider names in the LLM registry."""

    ANTHROPIC_CLAUDE = "anthropic-claude"
    OPENAI_GPT = "openai-gpt"
    GOOGLE_GEMINI = "google-gemini"
    META_LLAMA = "meta-llama"
    OPENAI_COMPATIBLE = "openai-compatible"
    LOCAL = "local"
    CUSTOM = "custom"


class AgentInterface(StrEnum):
    """How an agent is reached.

    ``api``: a ``BaseLlm`` from the factory. ``cli``: an external command given the prompt on
    stdin. ``script``: the legacy ``execute_*.py`` JSON protocol. ``interactive``: a person.
    ``hybrid``: the agent drafts, its ``reviewer`` critiques, the agent revises.
    """

    API = "api"
    CLI = "cli"
    SCRIPT = "script"
    INTERACTIVE = "interactive"
    HYBRID = "hybrid"


class AgentCapability(StrEnum):
    """What an agent is good at; used to find and recommend agents."""

    CODE = "code"
    RESEARCH = "research"
    DESIGN = "design"
    TESTING = "testing"
    DEPLOYMENT = "deployment"
    DOCUMENTATION = "documentation"
    ANALYSIS = "analysis"
    PLANNING = "planning"


_CAPABILITY_VALUES = frozenset(c.value for c in AgentCapability)


def _coerce(enum: type[E], value: Any, what: str, agent: str) -> E:
    return coerce_enum(enum, value, what=what, owner=f"agent {agent!r}", error=AgentError)


@dataclass
class AgentConfig:
    """One agent. Strings are accepted for the enum fields and converted.

    ``command`` is the argv of a ``cli`` or ``script`` agent (a string is split with
    :func:`shlex.split`; no shell ever runs it). ``reviewer`` names the agent that critiques a
    ``hybrid`` agent's draft. ``provider`` names the LLM registry entry of a ``custom`` agent.
    ``provider_options`` pass through to the LLM class (or to the command backend).
    """

    name: str
    agent_type: AgentType
    interface: AgentInterface = AgentInterface.API
    model: str | None = None
    api_key: Secret | str | None = field(default=None, repr=False)
    base_url: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    capabilities: list[AgentCapability] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    enabled: bool = True
    provider_options: dict[str, Any] = field(default_factory=dict)
    command: list[str] | None = None
    reviewer: str | None = None
    provider: str | None = None
    description: str = ""
    tools: list[str] = field(default_factory=list)
    """What an ``api`` agent may call (``tools:``): it then runs the agent loop."""
    max_turns: int = 20
    max_tool_calls: int = 100
    tool_timeout: float | None = 60.0
    max_parallel_tools: int = 4
    allow_commands: list[str | list[str]] = field(default_factory=list)
    """The commands ``run_command`` may start: a string (``"python -m pytest"``) or an argv."""
    require_sandbox: bool = False
    """``run_command`` refuses to run where no network namespace can be made."""
    approve: list[str] = field(default_factory=list)
    """Tools whose calls wait for a person's approval (``coditect task approve|reject``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise AgentError(f"an agent needs a non-empty name, got {self.name!r}")
        self.agent_type = _coerce(AgentType, self.agent_type, "agent_type", self.name)
        self.interface = _coerce(AgentInterface, self.interface, "interface", self.name)
        self.capabilities = [
            _coerce(AgentCapability, c, "capability", self.name) for c in self.capabilities
        ]
        if isinstance(self.api_key, str):
            self.api_key = Secret(self.api_key) if self.api_key else None
        self.fallbacks = list(self.fallbacks)
        self.provider_options = dict(self.provider_options)
        if isinstance(self.command, str):
            self.command = shlex.split(self.command)
        elif self.command is not None:
            self.command = [str(part) for part in self.command]
        if self.interface in (AgentInterface.CLI, AgentInterface.SCRIPT) and not self.command:
            raise AgentError(
                f"agent {self.name!r}: interface {self.interface.value} needs a command "
                f"(an argv list such as ['claude', '-p'])"
            )
        if self.interface is AgentInterface.HYBRID and not self.reviewer:
            raise AgentError(f"agent {self.name!r}: interface hybrid needs a reviewer agent")
        if self.reviewer == self.name:
            raise AgentError(f"agent {self.name!r} cannot review its own drafts")
        if (
            self.agent_type is AgentType.CUSTOM
            and self.interface in (AgentInterface.API, AgentInterface.HYBRID)
            and not self.provider
        ):
            raise AgentError(
                f"agent {self.name!r}: type custom needs a provider (an LLM registry name)"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise AgentError(f"agent {self.name!r}: timeout must be > 0, got {self.timeout!r}")
        self.tools = [str(entry) for entry in self.tools]
        for bound in ("max_turns", "max_tool_calls", "max_parallel_tools"):
            if getattr(self, bound) < 1:
                raise AgentError(f"agent {self.name!r}: {bound} must be >= 1")
        if self.tool_timeout is not None and self.tool_timeout <= 0:
            raise AgentError(f"agent {self.name!r}: tool_timeout must be > 0")

    def has_capabilities(self, capabilities: Iterable[AgentCapability | str]) -> bool:
        """Whether this agent has every one of ``capabilities``."""
        mine = set(self.capabilities)
        return all(AgentCapability(c) in mine for c in capabilities)

    def api_key_value(self) -> str | None:
        """The plain key, for the one place it goes on the wire (an LLM constructor)."""
        if isinstance(self.api_key, Secret):
            return self.api_key.get() or None
        return self.api_key or None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the settings. The API key is never included."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "api_key":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, list):
                value = [v.value if isinstance(v, Enum) else v for v in value]
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentConfig:
        """Build from a mapping like :meth:`to_dict`'s (an ``api_key`` key is accepted too)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AgentError(f"agent {data.get('name')!r}: unknown field(s) {', '.join(unknown)}")
        kwargs: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in data.items()
        }
        return cls(**kwargs)


class AgentRegistry:
    """The agents of a project, by name, in registration order."""

    def __init__(self, agents: Iterable[AgentConfig] = ()) -> None:
        self._agents: dict[str, AgentConfig] = {}
        for agent in agents:
            self.register(agent)

    def register(self, agent: AgentConfig, *, replace: bool = False) -> AgentConfig:
        """Add ``agent``; a second agent with the same name is refused unless ``replace``."""
        if agent.name in self._agents and not replace:
            raise AgentError(f"agent {agent.name!r} is already registered")
        self._agents[agent.name] = agent
        logger.debug(
            "registered agent %s (%s, %s)",
            agent.name,
            agent.agent_type.value,
            agent.interface.value,
        )
        return agent

    def unregister(self, name: str) -> AgentConfig:
        """Remove and return agent ``name``."""
        agent = self.get(name)
        del self._agents[name]
        return agent

    def get(self, name: str) -> AgentConfig:
        """The agent called ``name``; :class:`AgentError` naming the known agents otherwise."""
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(self._agents) or "none"
            raise AgentError(f"unknown agent {name!r}; known agents: {known}") from None

    def list(self, *, enabled_only: bool = False) -> list[AgentConfig]:
        """Every agent (or every enabled one), in registration order."""
        return [a for a in self._agents.values() if a.enabled or not enabled_only]

    def names(self) -> builtins.list[str]:
        """Agent names in registration order."""
        return list(self._agents)

    def find_by_capability(
        self, capability: AgentCapability | str, *, enabled_only: bool = True
    ) -> builtins.list[AgentConfig]:
        """Agents that have ``capability``."""
        cap = AgentCapability(capability)
        return [a for a in self.list(enabled_only=enabled_only) if cap in a.capabilities]

    def find_by_type(
        self, agent_type: AgentType | str, *, enabled_only: bool = True
    ) -> builtins.list[AgentConfig]:
        """Agents of ``agent_type``."""
        kind = AgentType(agent_type)
        return [a for a in self.list(enabled_only=enabled_only) if a.agent_type is kind]

    def recommend(self, capabilities: Sequence[AgentCapability | str]) -> AgentConfig | None:
        """The enabled agent that best covers ``capabilities``, or ``None`` if none has any.

        Best means: most of the wanted capabilities, then fewest unwanted ones (a specialist
        over a generalist), then registration order.
        """
        wanted = {AgentCapability(c) for c in capabilities}
        best: tuple[int, int, int] | None = None
        choice: AgentConfig | None = None
        for index, agent in enumerate(self.list(enabled_only=True)):
            mine = set(agent.capabilities)
            covered = len(wanted & mine)
            if wanted and covered == 0:
                continue
            key = (-covered, len(mine - wanted), index)
            if best is None or key < best:
                best, choice = key, agent
        return choice

    def resolve(
        self, task: AgentTask, agent: str | None = None, *, default: str | None = None
    ) -> AgentConfig:
        """The agent that runs ``task``: ``agent`` if given, else the task's, else ``default``;
        failing those, one whose capabilities match the task's tags, or the only enabled agent.

        :class:`AgentError` if none can, or the one named is unknown or disabled.
        """
        name = agent or task.agent or default
        config = self.get(name) if name else self._guess(task)
        if not config.enabled:
            raise AgentError(f"agent {config.name!r} is disabled")
        return config

    def _guess(self, task: AgentTask) -> AgentConfig:
        capabilities = [t for t in task.tags if t in _CAPABILITY_VALUES]
        if capabilities:
            found = self.recommend(capabilities)
            if found is not None:
                return found
        enabled = self.list(enabled_only=True)
        if len(enabled) == 1:
            return enabled[0]
        known = ", ".join(self.names()) or "none registered"
        raise AgentError(
            f"task {task.task_id!r} names no agent and there is no default agent (agents: {known})"
        )

    def enable(self, name: str) -> None:
        """Let agent ``name`` take tasks again."""
        self.get(name).enabled = True

    def disable(self, name: str) -> None:
        """Stop agent ``name`` from taking tasks (its tasks fail with a clear error)."""
        self.get(name).enabled = False

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __iter__(self) -> Iterator[AgentConfig]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)

    def __repr__(self) -> str:
        return f"AgentRegistry({', '.join(self._agents)})"

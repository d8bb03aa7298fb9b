"""Which model ``coditect ask`` sends its prompt to: a provider by name, one told by the model's
name (``gpt-4o-mini``: OpenAI), a configured agent of a project file, or the embedded model.

Picking is a lookup (:func:`coditect_core.llm_abstractions.registry.provider_for_model`), never a
ladder of names here.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AgentError, ProjectFileError
from ..llm_abstractions.base_llm import BaseLlm
from ..llm_abstractions.registry import create_llm, provider_for_model

if TYPE_CHECKING:
    from ..project import ProjectFile

__all__ = ["DEFAULT_PROVIDER", "AskTarget", "agent_in", "agent_target", "model_target"]

DEFAULT_PROVIDER = "local"
"""The provider when nothing is named: the embedded model (no key, no network)."""


@dataclass
class AskTarget:
    """The LLM a prompt goes to, and how it was chosen (for the person asking)."""

    llm: BaseLlm
    provider: str
    chosen: str
    """Why this provider: ``"named"``, ``"model name"``, ``"agent"`` or ``"default"``."""
    system_prompt: str | None = None
    """The agent's system prompt, when an agent was named."""


def model_target(provider: str | None, model: str | None, **settings: Any) -> AskTarget:
    """``provider`` with ``model``; without a provider, the one the model's name tells
    (:class:`~coditect_core.errors.LlmConfigurationError` when it tells none); with neither,
    the embedded model. ``settings`` (``base_url``, ``max_tokens``...) go to the LLM as given."""
    if provider is not None:
        chosen = "named"
    elif model is not None:
        provider, chosen = provider_for_model(model), "model name"
    else:
        provider, chosen = DEFAULT_PROVIDER, "default"
    given = {k: v for k, v in {"model": model, **settings}.items() if v is not None}
    return AskTarget(create_llm(provider, **given), provider, chosen)


def agent_target(project: str | os.PathLike[str], agent: str) -> AskTarget:
    """The agent ``agent`` of the project file ``project``, as a run would call it (its
    settings, key, limits and retries); its variables must be set.

    Raises :class:`~coditect_core.errors.ProjectFileError` for a bad file or an unknown agent,
    :class:`~coditect_core.errors.AgentError` for an agent with no model behind it."""
    from ..project import read_project_file

    return agent_in(read_project_file(project), agent)


def agent_in(spec: ProjectFile, agent: str) -> AskTarget:
    """:func:`agent_target` on a project file already read."""
    from ..orchestration.agent_registry import AgentInterface
    from ..orchestration.executor import TaskExecutor

    if agent not in spec.spec.agents:
        known = list(spec.spec.agents)
        close = difflib.get_close_matches(agent, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProjectFileError(
            f"no agent {agent!r} in the file{hint}; agents: {', '.join(known)}", path=spec.path
        )
    # every task on this agent: only its variables must be set, as for `run --agent`
    resolved = spec.resolve(agent_override=agent)
    config = resolved.agents.get(agent)
    if config.interface is AgentInterface.INTERACTIVE:
        raise AgentError(f"agent {agent!r} is a person (interface: interactive): no model to ask")
    if not config.enabled:
        raise AgentError(f"agent {agent!r} is disabled (enabled: false)")
    llm = TaskExecutor(resolved.agents).pipeline(config)
    provider = config.provider or str(config.agent_type.value)
    return AskTarget(llm, provider, "agent", system_prompt=config.system_prompt)

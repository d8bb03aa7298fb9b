"""AgentConfig validation and secrecy; AgentRegistry lookups, recommendation, enable/disable."""

from __future__ import annotations

import pytest

from coditect_core.errors import AgentError
from coditect_core.llm_abstractions.keys import Secret
from coditect_core.orchestration.agent_registry import (
    AgentCapability,
    AgentConfig,
    AgentInterface,
    AgentRegistry,
    AgentType,
)

KEY = "sk-canary-0123456789abcdef"


def test_enum_values_keep_the_original_spellings() -> None:
    assert [t.value for t in AgentType] == [
        "anthropic-claude",
        "openai-gpt",
        "google-gemini",
        "meta-llama",
        "openai-compatible",
        "local",
        "custom",
    ]
    assert [i.value for i in AgentInterface] == ["api", "cli", "script", "interactive", "hybrid"]
    assert {c.value for c in AgentCapability} == {
        "code",
        "research",
        "design",
        "testing",
        "deployment",
        "documentation",
        "analysis",
        "planning",
    }


def test_strings_are_converted_to_enums() -> None:
    agent = AgentConfig("a", "google-gemini", interface="api", capabilities=["code", "testing"])
    assert agent.agent_type is AgentType.GOOGLE_GEMINI
    assert agent.interface is AgentInterface.API
    assert agent.capabilities == [AgentCapability.CODE, AgentCapability.TESTING]


def test_unknown_enum_value_names_the_allowed_ones() -> None:
    with pytest.raises(AgentError, match=r"agent_type is 'gpt5'; expected one of anthropic-claude"):
        AgentConfig("a", "gpt5")
    with pytest.raises(AgentError, match="capability is 'cooking'"):
        AgentConfig("a", "local", capabilities=["cooking"])


def test_key_never_in_repr_str_or_to_dict() -> None:
    agent = AgentConfig("a", AgentType.OPENAI_GPT, model="gpt-4o-mini", api_key=KEY)
    assert isinstance(agent.api_key, Secret)
    assert agent.api_key_value() == KEY
    for text in (repr(agent), str(agent), repr(agent.to_dict()), str(agent.api_key)):
        assert KEY not in text
    assert "api_key" not in agent.to_dict()


def test_to_dict_from_dict_round_trip() -> None:
    agent = AgentConfig(
        "rev",
        "custom",
        provider="fake",
        capabilities=["analysis"],
        fallbacks=["b"],
        provider_options={"latency": 0.1},
        description="reviews",
    )
    data = agent.to_dict()
    assert data["agent_type"] == "custom"
    assert data["capabilities"] == ["analysis"]
    again = AgentConfig.from_dict(data)
    assert again == agent
    with pytest.raises(AgentError, match="unknown field"):
        AgentConfig.from_dict({**data, "colour": "red"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interface": "cli"}, "needs a command"),
        ({"interface": "script"}, "needs a command"),
        ({"interface": "hybrid"}, "needs a reviewer"),
        ({"interface": "hybrid", "reviewer": "a"}, "cannot review its own"),
        ({"timeout": 0}, "timeout must be > 0"),
    ],
)
def test_structural_checks(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AgentError, match=message):
        AgentConfig("a", "local", **kwargs)  # type: ignore[arg-type]


def test_custom_needs_a_provider_and_command_string_is_split() -> None:
    with pytest.raises(AgentError, match="custom needs a provider"):
        AgentConfig("a", "custom")
    agent = AgentConfig("a", "custom", interface="cli", command="claude -p --model 'x y'")
    assert agent.command == ["claude", "-p", "--model", "x y"]
    with pytest.raises(AgentError, match="non-empty name"):
        AgentConfig("", "local")


def _registry() -> AgentRegistry:
    return AgentRegistry(
        [
            AgentConfig("generalist", "local", capabilities=list(AgentCapability)),
            AgentConfig("coder", "anthropic-claude", capabilities=["code", "testing"]),
            AgentConfig("writer", "openai-gpt", capabilities=["documentation"]),
            AgentConfig("gem", "google-gemini", capabilities=["research", "analysis"]),
        ]
    )


def test_register_refuses_duplicates_and_get_names_known_agents() -> None:
    registry = _registry()
    with pytest.raises(AgentError, match="already registered"):
        registry.register(AgentConfig("coder", "local"))
    registry.register(AgentConfig("coder", "local"), replace=True)
    assert registry.get("coder").agent_type is AgentType.LOCAL
    with pytest.raises(AgentError, match="unknown agent 'nobody'; known agents: generalist, coder"):
        registry.get("nobody")
    assert registry.names() == ["generalist", "coder", "writer", "gem"]
    assert len(registry) == 4
    assert "gem" in registry


def test_find_by_capability_and_type_respect_enabled() -> None:
    registry = _registry()
    assert [a.name for a in registry.find_by_capability("code")] == ["generalist", "coder"]
    assert [a.name for a in registry.find_by_type(AgentType.OPENAI_GPT)] == ["writer"]
    registry.disable("coder")
    assert [a.name for a in registry.find_by_capability("code")] == ["generalist"]
    assert [a.name for a in registry.find_by_capability("code", enabled_only=False)] == [
        "generalist",
        "coder",
    ]
    assert [a.name for a in registry.list(enabled_only=True)] == ["generalist", "writer", "gem"]
    registry.enable("coder")
    assert registry.get("coder").enabled


def test_recommend_prefers_coverage_then_specialists() -> None:
    registry = _registry()
    # Only the generalist covers both.
    assert registry.recommend(["code", "documentation"]).name == "generalist"  # type: ignore[union-attr]
    # Both cover "code"; the specialist has fewer unwanted capabilities.
    assert registry.recommend(["code"]).name == "coder"  # type: ignore[union-attr]
    registry.disable("coder")
    assert registry.recommend(["code"]).name == "generalist"  # type: ignore[union-attr]
    registry.unregister("generalist")
    assert registry.recommend(["code"]) is None
    with pytest.raises(AgentError):
        registry.unregister("generalist")

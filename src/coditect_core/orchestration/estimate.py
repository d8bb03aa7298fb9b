"""Offline estimates of a model call, before it is made: its input tokens (no tokenizer), its
output bound, and what it costs at the agent's price. The cost forecast (:mod:`.forecast`) and
the agent loop's budget check (:mod:`.tool_loop`) both price a call this way.

Input tokens: :data:`CHARS_PER_TOKEN` characters a token plus :data:`MESSAGE_OVERHEAD` tokens a
message and :data:`REQUEST_OVERHEAD` a request. The output bound: the agent's ``max_tokens``, else
the default its provider class sends (``BaseLlm.default_max_tokens``), else the model's context
window from the price data, else none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import CoditectError
from ..llm_abstractions.base_llm import Usage
from ..llm_abstractions.messages import Message
from .agent_registry import AgentConfig

if TYPE_CHECKING:
    from .executor import TaskExecutor

__all__ = [
    "ASSUMED_OUTPUT",
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD",
    "REQUEST_OVERHEAD",
    "call_cost",
    "call_model",
    "estimate_tokens",
    "tokens_of",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 3
ASSUMED_OUTPUT = 1_000
"""Output tokens the low and expected cases assume for a call with no output bound."""


def tokens_of(chars: Iterable[int]) -> int:
    """The estimated input tokens of a request whose messages have ``chars`` characters each."""
    sizes = list(chars)
    return (
        sum(-(-n // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD for n in sizes) + REQUEST_OVERHEAD
        if sizes
        else 0
    )


def estimate_tokens(messages: Sequence[Message]) -> int:
    """The estimated input tokens of a request of ``messages`` (tool calls' arguments count)."""
    return tokens_of(
        len(str(m.get("content") or ""))
        + sum(len(c.name) + len(c.arguments_json()) for c in m.get("tool_calls", ()))
        for m in messages
    )


def call_model(
    executor: TaskExecutor, agent: AgentConfig
) -> tuple[str | None, str | None, int | None]:
    """``(provider, model, output bound)`` of ``agent``'s calls."""
    try:
        cls = executor.llm_class(agent)
    except CoditectError:  # no class for it (a run fails the task): nothing priced
        return (agent.provider, agent.model, agent.max_tokens)
    model = agent.model or cls.default_model
    bound = agent.max_tokens or cls.default_max_tokens
    if bound is None:
        bound = executor.prices.context_window(cls.provider, model)
    return (cls.provider, model, bound)


def call_cost(
    executor: TaskExecutor,
    agent: AgentConfig,
    prompt: float,
    completion: float,
    model: tuple[str | None, str | None, int | None] | None = None,
) -> float | None:
    """USD of a call of ``agent`` with these tokens; ``None`` when its price is unknown."""
    provider, name, _ = model if model is not None else call_model(executor, agent)
    usage = Usage(math.ceil(prompt), math.ceil(completion))
    return executor.prices.cost(agent.name, provider, name, usage, agent.base_url)

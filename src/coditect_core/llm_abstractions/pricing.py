"""What a call costs: the shipped price table, per-agent overrides, and the arithmetic.

Prices are USD per million tokens, ``input`` for the prompt and ``output`` for the completion.
The table ships as ``coditect_core/data/prices.json`` (with the date its figures are from and
where they came from); it is read on the first lookup, never fetched. A model is found by its
exact name, else by that name without a snapshot suffix (``-2024-07-18``, ``-20250929``,
``-latest``) or Gemini's ``models/`` prefix; a name merely *starting* like a listed one
(``gpt-4o-mini`` vs ``gpt-4o``) does not match. A model that is not found has an unknown price,
and a call on it an unknown cost: ``None``, never a made-up zero. An agent's ``price`` (from the
project file) wins over the table for every model the agent uses. :class:`PricedLlm` prices each
response of the LLM it wraps (``LlmResponse.cost_usd``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .base_llm import BaseLlm, LlmResponse, Usage
from .messages import Messages
from .wrapper import WrapperLlm

__all__ = ["Price", "PriceBook", "PriceTable", "PricedLlm", "call_cost", "default_price_table"]

_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_PER = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million prompt (``input``) and completion (``output``) tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError(f"a price cannot be negative: {self.input}, {self.output}")

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``."""
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / _PER


def call_cost(price: Price | None, usage: Usage | None) -> float | None:
    """USD for one call: ``None`` when the price or the token counts are unknown."""
    if price is None or usage is None:
        return None
    return price.cost(usage)


class PriceTable:
    """Prices by provider (the LLM registry's canonical name) and model.

    ``"*"`` as a model prices every model of that provider (the embedded ``local`` model: no
    charge per token).
    """

    def __init__(
        self, prices: Mapping[str, Mapping[str, Price]], *, info: Mapping[str, Any] | None = None
    ) -> None:
        self._prices = {
            provider: {model.lower(): price for model, price in models.items()}
            for provider, models in prices.items()
        }
        self.info: dict[str, Any] = dict(info or {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build from the shape of ``prices.json``."""
        providers = {
            provider: {name: Price(float(p["input"]), float(p["output"])) for name, p in m.items()}
            for provider, m in data.get("providers", {}).items()
        }
        return cls(providers, info={k: v for k, v in data.items() if k != "providers"})

    def lookup(self, provider: str | None, model: str | None) -> Price | None:
        """The price of ``model`` on ``provider``, or ``None`` when it is not known."""
        models = self._prices.get(provider or "")
        if not models:
            return None
        if model:
            name = model.lower().removeprefix("models/")
            found = models.get(name)
            if found is None:
                base = _SNAPSHOT.sub("", name)
                if base != name:
                    found = models.get(base)
            if found is not None:
                return found
        return models.get("*")

    def __repr__(self) -> str:
        n = sum(len(m) for m in self._prices.values())
        return f"PriceTable({n} models, as of {self.info.get('prices_as_of')!r})"


@cache
def default_price_table() -> PriceTable:
    """The table shipped in ``coditect_core/data/prices.json`` (read once)."""
    text = resources.files("coditect_core").joinpath("data/prices.json").read_text("utf-8")
    return PriceTable.from_json(json.loads(text))


class PriceBook:
    """The prices one executor uses: per-agent overrides, then the table."""

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        table: PriceTable | None = None,
    ) -> None:
        self.overrides = dict(overrides or {})
        self._table = table

    @property
    def table(self) -> PriceTable:
        if self._table is None:
            self._table = default_price_table()
        return self._table

    def price(self, agent: str | None, provider: str | None, model: str | None) -> Price | None:
        """The price of a call by ``agent`` on ``provider``/``model``; ``None`` if unknown."""
        found = self.overrides.get(agent or "")
        return found if found is not None else self.table.lookup(provider, model)

    def cost(
        self, agent: str | None, provider: str | None, model: str | None, usage: Usage | None
    ) -> float | None:
        """USD of one call; ``None`` when its price or its token counts are unknown."""
        return call_cost(self.price(agent, provider, model), usage)


class PricedLlm(WrapperLlm):
    """``wrapped`` whose every response says what it cost (``cost_usd``; ``None``: unknown).

    ``agent`` is the name whose price overrides the table in ``prices``.
    """

    def __init__(self, wrapped: BaseLlm, prices: PriceBook, *, agent: str | None = None) -> None:
        super().__init__(wrapped)
        self.prices = prices
        self.agent = agent

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        response = await self.wrapped.request_async(messages, deadline=deadline, **kwargs)
        response.cost_usd = self.prices.cost(
            self.agent, self.provider, response.model, response.usage
        )
        return response

"""What a call costs: prices from ``genai-prices``, per-agent overrides, and the arithmetic.

Every call is priced with `genai-prices <https://github.com/pydantic/genai-prices>`_ (pydantic's
maintained price database), from the data packaged with the installed version: it is imported
lazily here, on the first price asked for, and its online updates are never started (no network,
and a price must not change under a running budget). Its prices per model include the tiers of
long prompts and the prices of cached input: a response whose usage reports cache reads or writes
(``Usage.cache_read_tokens`` / ``cache_write_tokens``) pays those tokens at the cache prices.

An OpenAI-compatible server is priced when its ``base_url`` is a vendor's that genai-prices
knows (DeepSeek, Groq, OpenRouter...); a server of your own is not. A model not found there has
an unknown price, and a call on it an unknown cost: ``None``, never a made-up zero. The embedded
``local`` model costs nothing per token. An agent's ``price`` (from the project file, USD per
million tokens) wins over the database for every model the agent uses.
:class:`PricedLlm` prices each response of the LLM it wraps (``LlmResponse.cost_usd``);
:func:`price_data_version` names the data (shown by ``coditect doctor`` and in reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Protocol

from .base_llm import BaseLlm, LlmResponse, Usage
from .messages import Messages
from .wrapper import WrapperLlm

__all__ = [
    "GenaiPrices",
    "Price",
    "PriceBook",
    "PriceSource",
    "PricedLlm",
    "call_cost",
    "default_price_source",
    "price_data_version",
]


_PER = 1_000_000

# Our providers (the LLM registry's canonical names) -> genai-prices' provider ids. A provider
# not here (an OpenAI-compatible server, a command, a plugin) has unknown prices.
_PROVIDER_IDS = {"openai-gpt": "openai", "anthropic-claude": "anthropic", "google-gemini": "google"}
_FREE_PROVIDERS = frozenset({"local"})  # the embedded model: no charge per token


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million prompt (``input``) and completion (``output``) tokens (an agent's own)."""

    input: float
    output: float

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError(f"a price cannot be negative: {self.input}, {self.output}")

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``."""
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / _PER


def call_cost(price: Price | None, usage: Usage | None) -> float | None:
    """USD for one call at ``price``: ``None`` when the price or the token counts are unknown."""
    if price is None or usage is None:
        return None
    return price.cost(usage)


class PriceSource(Protocol):
    """Where prices by provider and model come from."""

    @property
    def version(self) -> str:
        """The price data's name and version."""
        ...

    def cost(
        self, provider: str | None, model: str | None, usage: Usage, base_url: str | None = None
    ) -> float | None:
        """USD of ``usage`` on ``provider``/``model`` (an OpenAI-compatible server: found by
        its ``base_url``); ``None`` when its price is unknown."""
        ...

    def context_window(self, provider: str | None, model: str | None) -> int | None:
        """Tokens in and out of one call of ``model``, when the price data knows it."""
        ...


class GenaiPrices:
    """The prices packaged with the installed ``genai-prices`` (never updated online)."""

    @property
    def version(self) -> str:
        return price_data_version()

    def cost(
        self, provider: str | None, model: str | None, usage: Usage, base_url: str | None = None
    ) -> float | None:
        if provider in _FREE_PROVIDERS:
            return 0.0
        if not model:
            return None
        provider_id = _PROVIDER_IDS.get(provider or "")
        if provider_id is not None:
            return _genai_cost(provider_id, None, model, usage)
        if provider == "openai-compatible" and base_url:
            return _genai_cost(None, base_url, model, usage)  # a known vendor's URL, or None
        return None

    def context_window(self, provider: str | None, model: str | None) -> int | None:
        provider_id = _PROVIDER_IDS.get(provider or "")
        if provider_id is None or not model:
            return None
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(
                model.removeprefix("models/"), None, provider_id, None
            )
        except LookupError:
            return None
        return info.context_window


@lru_cache(maxsize=8192)  # a forecast asks for the same counts again and again
def _genai_cost(
    provider_id: str | None, api_url: str | None, model: str, usage: Usage
) -> float | None:
    from genai_prices import calc_price
    from genai_prices import types as gp_types

    counts = gp_types.Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
    )
    ref = model.removeprefix("models/")
    try:
        if provider_id is not None:
            found = calc_price(counts, ref, provider_id=provider_id)
        else:
            found = calc_price(counts, ref, provider_api_url=api_url)
    except LookupError:  # an unknown model, or a server that is no known vendor's
        return None
    return float(found.total_price)


@cache
def default_price_source() -> GenaiPrices:
    """The one :class:`GenaiPrices`."""
    return GenaiPrices()


@cache
def price_data_version() -> str:
    """``genai-prices X.Y.Z (packaged data)``: the price data every call is priced with."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')} (packaged data)"
    except PackageNotFoundError:  # pragma: no cover - a dependency of the package
        return "genai-prices (not installed)"


class PriceBook:
    """The prices one executor uses: per-agent overrides, then the price source."""

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        source: PriceSource | None = None,
    ) -> None:
        self.overrides = dict(overrides or {})
        self._source = source

    @property
    def source(self) -> PriceSource:
        if self._source is None:
            self._source = default_price_source()
        return self._source

    def cost(
        self,
        agent: str | None,
        provider: str | None,
        model: str | None,
        usage: Usage | None,
        base_url: str | None = None,
    ) -> float | None:
        """USD of one call; ``None`` when its price or its token counts are unknown."""
        if usage is None:
            return None
        own = self.overrides.get(agent or "")
        if own is not None:
            return own.cost(usage)
        return self.source.cost(provider, model, usage, base_url)

    def context_window(self, provider: str | None, model: str | None) -> int | None:
        """The context window of ``model`` on ``provider`` from the price data, if known."""
        return self.source.context_window(provider, model)


class PricedLlm(WrapperLlm):
    """``wrapped`` whose every response says what it cost (``cost_usd``; ``None``: unknown).

    ``agent`` is the name whose price overrides the price source in ``prices``.
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
            self.agent, self.provider, response.model, response.usage, self.base_url
        )
        return response

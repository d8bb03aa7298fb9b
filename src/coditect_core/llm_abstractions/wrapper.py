"""``WrapperLlm``: a ``BaseLlm`` that adds one concern to each request of the ``BaseLlm`` it wraps.

A request pipeline is built by wrapping, one concern per wrapper, as pydantic-ai builds a model
out of ``WrapperModel``\\s::

    llm = PricedLlm(LimitedLlm(Gpt(model="gpt-4o-mini"), gate), prices)
    response = await llm.generate_async("Hi")   # retried by llm.retry; every attempt is
                                                # gated, sent, priced

A wrapper overrides :meth:`~WrapperLlm.request_async` (one request) and calls the wrapped one's;
the retry loop stays :meth:`BaseLlm.generate_async`'s, run by the outermost LLM with its own
``retry`` policy (the wrapped one's unless given). Settings (model, timeout...) and the provider
name are the wrapped one's. Closing a wrapper closes what it wraps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..secrets import Secret
from .base_llm import BaseLlm, CallParams, LlmResponse, LlmStream, StreamState
from .messages import Message, Messages
from .output import OutputMode
from .retry import RetryPolicy

__all__ = ["WrapperLlm"]


class WrapperLlm(BaseLlm):
    """Passes every request to ``wrapped``; subclasses add their concern around it."""

    def __init__(self, wrapped: BaseLlm, *, retry: RetryPolicy | None = None) -> None:
        # Not BaseLlm.__init__: there is no key to look up and no client to make here.
        self.wrapped = wrapped
        self.provider = wrapped.provider
        self.supports_tools = wrapped.supports_tools
        self.model = wrapped.model
        self.base_url = wrapped.base_url
        self.timeout = wrapped.timeout
        self.max_tokens = wrapped.max_tokens
        self.temperature = wrapped.temperature
        self.retry = retry if retry is not None else wrapped.retry
        self.client_settings = {}
        self.provider_options = {}
        self._api_key = None
        self._client = None
        self._client_loop = None

    @property
    def api_key(self) -> Secret | None:
        return self.wrapped.api_key

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        """One request of the wrapped LLM (a subclass adds its concern around it)."""
        return await self.wrapped.request_async(messages, deadline=deadline, **kwargs)

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        raise NotImplementedError("a wrapper's requests go through request_async")

    def stream_content_async(self, messages: Messages, **kwargs: Any) -> LlmStream:
        """The wrapped LLM's stream (a stream is one call of it, retried by its own policy)."""
        return self.wrapped.stream_content_async(messages, **kwargs)

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        raise NotImplementedError("a wrapper streams through stream_content_async")
        yield ""  # pragma: no cover (makes this an async generator, as the contract says)

    def output_modes(self) -> tuple[OutputMode, ...]:
        """The wrapped LLM's (the provider's) typed-output modes."""
        return self.wrapped.output_modes()

    def prepare(self) -> None:
        self.wrapped.prepare()

    async def aclose(self) -> None:
        await self.wrapped.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.wrapped!r})"

"""``LlmStream``: a streamed call, as :meth:`BaseLlm.stream_content_async` returns it.

Iterating it yields the text deltas; ``response`` (and ``usage``) are there once it is
exhausted. A failure before the first delta is retried like any call (:mod:`.retry`); after it,
it is raised. Re-exported by :mod:`.base_llm` and the package.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Self

from . import instrumentation
from .datatypes import CallParams, LlmResponse, StreamState, Usage
from .messages import Message
from .retry import call_with_retry

if TYPE_CHECKING:
    from .base_llm import BaseLlm

__all__ = ["LlmStream"]

logger = logging.getLogger(__name__)


class LlmStream:
    """An async iterator of text deltas; after it is exhausted, ``response`` is the whole reply.

    ``async with llm.stream_content_async(...) as stream`` closes the provider's stream (and its
    connection) even when the loop stops early; so does ``await stream.aclose()``.
    """

    def __init__(
        self,
        llm: BaseLlm,
        messages: list[Message],
        params: CallParams,
        options: Mapping[str, Any],
    ) -> None:
        self._llm = llm
        self._messages = messages
        self._params = params
        self._options = options
        self._iterator: AsyncGenerator[str, None] | None = None
        self._usage_sent = False
        self.response: LlmResponse | None = None

    def __repr__(self) -> str:
        state = "done" if self.response else "open"
        return f"<LlmStream {self._llm!r} {state}>"

    @property
    def usage(self) -> Usage | None:
        """Token counts, known once the stream is exhausted; ``None`` before, and also when
        the server sent none (some OpenAI-compatible servers, llama.cpp's among them, count
        no stream): unknown, not zero. ``response.usage`` then holds zeros."""
        return self.response.usage if self.response is not None and self._usage_sent else None

    def __aiter__(self) -> AsyncGenerator[str, None]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def __anext__(self) -> str:
        return await self.__aiter__().__anext__()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream early and release its connection."""
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _open(
        self, client: Any, attempt: int, started: float
    ) -> tuple[AsyncGenerator[str, None], StreamState, str | None, int]:
        """One attempt: start the provider's stream and wait for its first delta."""
        llm, params = self._llm, self._params
        state = StreamState()
        agen: Any = llm._stream(client, self._messages, params, state)
        timeout = params.timeout  # cut short to end by the retry policy's deadline
        if llm.retry.deadline is not None and timeout is not None:
            timeout = min(timeout, max(llm.retry.deadline - (time.monotonic() - started), 0.0))
        try:
            with llm._mapped_errors(timeout):
                async with asyncio.timeout(timeout):
                    first = await anext(agen, None)
        except BaseException:
            await _aclose(agen)
            raise
        return agen, state, first, attempt

    async def _run(self) -> AsyncGenerator[str, None]:
        llm, params = self._llm, self._params
        observer = instrumentation.start_call(llm, self._messages, self._options, stream=True)
        started = time.monotonic()
        try:
            with observer.current():  # the call's context while it opens (retries included)
                client = llm._get_client()
                agen, state, delta, attempts = await call_with_retry(
                    llm.retry,
                    lambda attempt: self._open(client, attempt, started),
                    started=started,
                    on_failure=observer.attempt_failed,
                )
            parts: list[str] = []
            try:
                while delta is not None:
                    if delta:
                        parts.append(delta)
                        yield delta
                    with llm._mapped_errors(params.timeout):
                        async with asyncio.timeout(params.timeout):
                            delta = await anext(agen, None)
            finally:
                await _aclose(agen)
        except BaseException as error:  # GeneratorExit too: the caller stopped early
            observer.failed(error)
            raise
        self._usage_sent = state.usage is not None
        if not self._usage_sent:
            logger.debug("%s: the server sent no token counts for this stream", llm.provider)
        self.response = LlmResponse(
            text="".join(parts),
            model=state.model or params.model,
            usage=state.usage or Usage(),
            finish_reason=state.finish_reason,
            attempts=attempts,
            latency_s=time.monotonic() - started,
            provider=llm.provider,
        )
        observer.finished(self.response)
        llm._log_done(self.response)


async def _aclose(iterator: AsyncIterator[str]) -> None:
    """Close a provider's stream if it can be closed (async generators can)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()

"""``BaseLlm``: the contract every model backend implements, and the call pipeline they share.

A provider subclass implements two small methods that map the wire format:

* ``_generate(client, messages, params) -> LlmResponse`` for one complete call, and
* ``_stream(client, messages, params, state)`` yielding text deltas (optional: the default
  streams the complete reply as one delta),

plus ``_create_client`` and ``_map_error`` when it talks to an SDK. Everything else lives here,
once: message validation, key lookup, retries (:mod:`.retry`), timeouts, timing, usage, error
mapping to :mod:`coditect_core.errors`, key redaction, and the sync wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..errors import LlmConfigurationError, LlmError, LlmResponseError, LlmTimeoutError
from .keys import Secret, resolve_api_key
from .messages import Message, Messages, normalize_messages
from .retry import RetryPolicy, call_with_retry

__all__ = ["BaseLlm", "CallParams", "LlmResponse", "LlmStream", "StreamState", "Usage"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (or a sum of calls). ``total_tokens`` defaults to the sum."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = -1

    def __post_init__(self) -> None:
        if self.total_tokens < 0:
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class LlmResponse:
    """The result of one successful call, retries included."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    attempts: int = 1
    latency_s: float = 0.0
    provider: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "finish_reason": self.finish_reason,
            "attempts": self.attempts,
            "latency_s": self.latency_s,
            "provider": self.provider,
        }


@dataclass(slots=True)
class CallParams:
    """Settings of one call: instance defaults overridden by the call's keyword arguments.

    ``options`` are the provider-specific extras passed straight through to the SDK call.
    """

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StreamState:
    """Filled in by a provider's ``_stream`` as the stream goes: what only arrives at the end."""

    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None


class BaseLlm(ABC):
    """A model reached through one provider. Create once, call many times, close at the end.

    ``api_key`` defaults to the first of the provider's ``api_key_env`` variables that is set; a
    provider whose ``api_key_env`` is empty needs no key. ``retry`` defaults to
    :class:`RetryPolicy()`. ``provider_options`` pass through to the SDK call, except those named
    in ``client_options`` which go to the SDK client's constructor.
    """

    provider: ClassVar[str] = "base"
    default_model: ClassVar[str | None] = None
    api_key_env: ClassVar[tuple[str, ...]] = ()
    client_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        model: str | None = None,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        retry: RetryPolicy | None = None,
        **provider_options: Any,
    ) -> None:
        resolved_model = model or self.default_model
        if not resolved_model:
            raise LlmConfigurationError("no model given and no default", provider=self.provider)
        self.model: str = resolved_model
        self.base_url = base_url
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.retry = retry if retry is not None else RetryPolicy()
        self._api_key: Secret | None = self._resolve_key(api_key)
        self.client_settings = {
            k: v for k, v in provider_options.items() if k in self.client_options
        }
        self.provider_options = {
            k: v for k, v in provider_options.items() if k not in self.client_options
        }
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- provider hooks

    def _resolve_key(self, api_key: str | None) -> Secret | None:
        """The key lookup; providers that need none keep the default (no key unless given)."""
        if not self.api_key_env:
            return Secret(api_key) if api_key else None
        return resolve_api_key(api_key, self.api_key_env, provider=self.provider)

    def _create_client(self) -> Any:
        """Build the SDK client (import the SDK here, lazily). Called once per event loop."""
        return None

    async def _close_client(self, client: Any) -> None:
        """Release the client's connections."""
        close = getattr(client, "close", None) or getattr(client, "aclose", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    @abstractmethod
    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        """Make one call (no retries) and return its response."""

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        """Yield text deltas of one call and fill ``state``. Default: one delta, the whole reply."""
        response = await self._generate(client, messages, params)
        state.usage, state.finish_reason, state.model = (
            response.usage,
            response.finish_reason,
            response.model,
        )
        yield response.text

    def _map_error(self, error: Exception) -> LlmError | None:
        """Translate an SDK exception into the error tree; ``None`` if it is not the SDK's."""
        return None

    # ----------------------------------------------------------------- public API

    @property
    def api_key(self) -> Secret | None:
        """The key in use, wrapped so that it never prints."""
        return self._api_key

    async def generate_content_async(self, messages: Messages, **kwargs: Any) -> str:
        """Send ``messages`` and return the reply text. The plan's call."""
        return (await self.generate_async(messages, **kwargs)).text

    async def generate_async(self, messages: Messages, **kwargs: Any) -> LlmResponse:
        """Send ``messages`` and return the whole :class:`LlmResponse`, retries included."""
        msgs = normalize_messages(messages, provider=self.provider)
        params = self._params(kwargs)
        client = self._get_client()
        started = time.monotonic()
        attempts = 0

        async def once(attempt: int) -> LlmResponse:
            nonlocal attempts
            attempts = attempt
            with self._mapped_errors():
                async with asyncio.timeout(params.timeout):
                    return await self._generate(client, msgs, params)

        response = await call_with_retry(self.retry, once)
        response.attempts = attempts
        response.latency_s = time.monotonic() - started
        response.provider = self.provider
        logger.debug(
            "%s %s: %d+%d tokens in %.3fs, %d attempt(s)",
            self.provider,
            response.model,
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
            response.latency_s,
            attempts,
        )
        return response

    def stream_content_async(self, messages: Messages, **kwargs: Any) -> LlmStream:
        """Send ``messages`` and iterate over text deltas; ``.response`` holds usage at the end.

        A failure before the first delta is retried like any call; after it, it is raised.
        """
        msgs = normalize_messages(messages, provider=self.provider)
        params = self._params(kwargs)
        return LlmStream(self, msgs, params)

    def generate_content(self, messages: Messages, **kwargs: Any) -> str:
        """Synchronous :meth:`generate_content_async`, for scripts outside an event loop."""
        return self._run_sync(self.generate_content_async(messages, **kwargs))

    async def aclose(self) -> None:
        """Close the SDK client. The instance can still be used: a new client is made."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await self._close_client(client)

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(model={self.model!r}{where})"

    # ----------------------------------------------------------------- pipeline

    def _params(self, kwargs: dict[str, Any]) -> CallParams:
        options = {**self.provider_options, **kwargs}
        return CallParams(
            model=options.pop("model", None) or self.model,
            max_tokens=options.pop("max_tokens", self.max_tokens),
            temperature=options.pop("temperature", self.temperature),
            timeout=options.pop("timeout", self.timeout),
            options=options,
        )

    def _get_client(self) -> Any:
        """The client for the running loop (clients hold connections bound to one loop)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._client is None or self._client_loop is not loop:
            with self._mapped_errors():
                self._client = self._create_client()
            self._client_loop = loop
        return self._client

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """Turn any exception of a call into an :class:`LlmError` with the key redacted."""
        try:
            yield
        except LlmError as error:
            self._redacted(error)
            raise
        except TimeoutError as error:
            raise LlmTimeoutError("no answer within the timeout", provider=self.provider) from error
        except Exception as error:
            mapped = self._map_error(error)
            if mapped is None:
                mapped = LlmResponseError(
                    f"unexpected {type(error).__name__}: {error}",
                    provider=self.provider,
                    retryable=False,
                )
            if mapped.provider is None:
                mapped.provider = self.provider
            raise self._redacted(mapped) from error

    def _redacted(self, error: LlmError) -> LlmError:
        key = self._api_key.get() if self._api_key else ""
        if key and key in error.message:
            error.message = error.message.replace(key, "***")
            error.args = (error.message,)
        return error

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise LlmConfigurationError(
                "the sync call was made inside a running event loop: await the async method",
                provider=self.provider,
            )

        async def run_and_close() -> T:
            try:
                return await coro
            finally:
                await self.aclose()

        return asyncio.run(run_and_close())


class LlmStream:
    """An async iterator of text deltas; after it is exhausted, ``response`` is the whole reply."""

    def __init__(self, llm: BaseLlm, messages: list[Message], params: CallParams) -> None:
        self._llm = llm
        self._messages = messages
        self._params = params
        self._iterator: AsyncIterator[str] | None = None
        self._agen: Any = None
        self.response: LlmResponse | None = None

    @property
    def usage(self) -> Usage | None:
        """Token counts, known once the stream is exhausted."""
        return self.response.usage if self.response else None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def __anext__(self) -> str:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        """Stop the stream early and release its connection."""
        if self._agen is not None:
            with contextlib.suppress(Exception):
                await self._agen.aclose()
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> AsyncIterator[str]:
        llm, params = self._llm, self._params
        client = llm._get_client()
        started = time.monotonic()

        async def first_delta(attempt: int) -> tuple[Any, StreamState, str | None, int]:
            state = StreamState()
            agen = llm._stream(client, self._messages, params, state)
            with llm._mapped_errors():
                try:
                    async with asyncio.timeout(params.timeout):
                        first = await anext(agen)
                except StopAsyncIteration:
                    first = None
                except BaseException:
                    with contextlib.suppress(BaseException):
                        await agen.aclose()
                    raise
            return agen, state, first, attempt

        agen, state, first, attempts = await call_with_retry(llm.retry, first_delta)
        self._agen = agen
        parts: list[str] = []
        if first:
            parts.append(first)
            yield first
        if first is not None:
            while True:
                with llm._mapped_errors():
                    try:
                        async with asyncio.timeout(params.timeout):
                            delta = await anext(agen)
                    except StopAsyncIteration:
                        break
                if delta:
                    parts.append(delta)
                    yield delta
        self.response = LlmResponse(
            text="".join(parts),
            model=state.model or params.model,
            usage=state.usage or Usage(),
            finish_reason=state.finish_reason,
            attempts=attempts,
            latency_s=time.monotonic() - started,
            provider=llm.provider,
        )

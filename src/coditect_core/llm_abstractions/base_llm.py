"""``BaseLlm``: the contract every model backend implements, and the call pipeline they share.

A provider subclass implements two small methods that map the wire format:

* ``_generate(client, messages, params) -> LlmResponse`` for one complete call, and
* ``_stream(client, messages, params, state)`` yielding text deltas (optional: the default
  streams the complete reply as one delta),

plus ``_create_client`` and ``_map_error`` when it talks to an SDK. Everything else lives here,
once: message validation, key lookup, retries (:mod:`.retry`), timeouts, timing, usage, error
mapping to :mod:`coditect_core.errors`, key redaction, and the sync wrapper.

A streamed call is an :class:`LlmStream` (what :meth:`BaseLlm.stream_content_async` returns):
its text deltas, then ``response``; a failure before the first delta is retried like any call.

A call (:meth:`BaseLlm.generate_async`) is attempts (each one :meth:`BaseLlm.request_async`, one
request) driven by the one retry loop and reported to :mod:`.instrumentation`. A request pipeline
is built by wrapping: a :class:`~.wrapper.WrapperLlm` adds one concern (limits, pricing...) to
each request of the LLM it wraps, and is itself a ``BaseLlm``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
)
from typing import Any, ClassVar, Self, TypeVar

from ..errors import (
    LlmConfigurationError,
    LlmError,
    LlmOutputValidationError,
    LlmRequestError,
    LlmResponseError,
    LlmTimeoutError,
)
from ..secrets import Secret, mask
from . import instrumentation
from .datatypes import CallParams, LlmResponse, StreamState, Usage, finish_reason_of
from .keys import resolve_api_key
from .messages import Message, Messages, normalize_messages
from .output import DEFAULT_OUTPUT_RETRIES, OutputMode, generate_typed
from .retry import RetryPolicy, call_with_retry
from .tool_types import Tool

__all__ = [
    "BaseLlm",
    "CallParams",
    "LlmResponse",
    "LlmStream",
    "StreamState",
    "Usage",
    "output_modes_of",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class BaseLlm(ABC):
    """A model reached through one provider. Create once, call many times, close at the end.

    ``api_key`` defaults to the first of the provider's ``api_key_env`` variables that is set; a
    provider whose ``api_key_env`` is empty needs no key. ``retry`` defaults to
    :class:`RetryPolicy()`. ``provider_options`` pass through to the SDK call, except those named
    in ``client_options`` which go to the SDK client's constructor (``client_settings``).

    The SDK client is made on first use, one per event loop (its connections belong to the loop
    that opened them), and reused by every call on that loop until :meth:`aclose`.
    """

    provider: str = "base"  # a class attribute; a wrapper sets the one it wraps on itself
    default_model: ClassVar[str | None] = None
    default_max_tokens: ClassVar[int | None] = None
    """The completion cap sent when ``max_tokens`` is not set (``None``: none is sent, the
    model's own limit applies). The cost forecast's output bound."""
    api_key_env: ClassVar[tuple[str, ...]] = ()
    client_options: ClassVar[frozenset[str]] = frozenset()
    supports_tools: bool = False
    """Whether the provider maps ``tools=`` (:mod:`.tool_types`); a call with tools to one that
    does not is refused before anything is sent. A class setting; a wrapper sets it on itself
    from the LLM it wraps."""
    no_tools_reason: ClassVar[str] = ""
    """Why a provider without tools has none, said in the refusal."""
    native_output: ClassVar[bool] = False
    """Whether the provider maps :attr:`CallParams.output` to its own structured output (the
    ``native`` output mode, :mod:`.output`)."""
    handles_timeout: ClassVar[bool] = False
    """Whether ``_generate`` enforces ``params.timeout`` itself (a command kills its process
    group at it); otherwise the request is cancelled at the timeout."""

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
            if inspect.isawaitable(result):
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
        state.tool_calls = list(response.tool_calls)
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

    async def generate_async(
        self,
        messages: Messages,
        *,
        output_schema: object = None,
        output_mode: OutputMode | str = OutputMode.AUTO,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        **kwargs: Any,
    ) -> LlmResponse:
        """Send ``messages`` and return the whole :class:`LlmResponse`, retries included.

        Each attempt is one :meth:`request_async`; the instance's ``retry`` policy decides
        whether a failed one is tried again (:func:`.retry.call_with_retry`, the one retry
        loop). An attempt's timeout is cut short so that it ends by the policy's deadline.

        With ``output_schema`` (a JSON Schema dict or a pydantic model class) the reply is
        parsed and validated into ``response.value``, asked for in ``output_mode`` (``auto``,
        ``native``, ``tool``, ``prompted``) and re-asked with the errors up to
        ``output_retries`` times, each try a whole call (:mod:`.output`); then
        :class:`~coditect_core.errors.LlmOutputValidationError`.
        """
        if output_schema is not None:
            return await generate_typed(
                self,
                messages,
                output_schema,
                mode=output_mode,
                retries=output_retries,
                **kwargs,
            )
        msgs = normalize_messages(messages, provider=self.provider)
        started = time.monotonic()
        observer = instrumentation.start_call(self, msgs, kwargs, stream=False)

        # An attempt with a timeout is cut short to end by the policy's deadline; without one,
        # the deadline only bounds when retries may start (the SDK's own timeout bounds it).
        deadline = None
        if self.retry.deadline is not None and kwargs.get("timeout", self.timeout) is not None:
            deadline = started + self.retry.deadline

        async def attempt(number: int) -> LlmResponse:
            response = await self.request_async(msgs, deadline=deadline, **kwargs)
            response.attempts = number
            return response

        with instrumentation.observed(observer):
            response = await call_with_retry(
                self.retry,
                attempt,
                started=started,
                on_failure=observer.attempt_failed,
                on_wait=self.retry_waiting,
            )
            response.latency_s = time.monotonic() - started
            observer.finished(response)
        return response

    async def retry_waiting(self, error: LlmError, attempt: int, wait: float) -> None:
        """Request ``attempt`` of :meth:`generate_async` failed with ``error`` and is retried
        after ``wait`` seconds: awaited before the wait. Nothing here; a wrapper that reports
        its attempts (the orchestrator's) overrides it."""
        return

    def output_modes(self) -> tuple[OutputMode, ...]:
        """The typed-output modes this LLM can use, best first (``auto`` takes the first):
        ``native`` if the provider maps it, ``tool`` if it calls tools, ``prompted`` always."""
        return _output_modes(self.native_output, self.supports_tools)

    async def output_invalid(self, error: LlmOutputValidationError, tries: int) -> None:
        """Try ``tries`` of a typed output was invalid (``error``) and is re-asked: awaited
        before the re-ask. Nothing here; the orchestrator's wrapper ends the attempt."""
        return

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        """Make one request: no retry. What a wrapper (:mod:`.wrapper`) passes each attempt on to.

        ``deadline`` (``time.monotonic()``) bounds the request whatever its timeout: it is cut
        when the deadline comes, and refused with :class:`LlmTimeoutError` if it has passed (the
        provider is still told the request's own timeout).
        Every failure comes out as an :class:`LlmError` without the key in its text.
        """
        msgs = normalize_messages(messages, provider=self.provider)
        params = self._params(kwargs)
        timer = params.timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LlmTimeoutError("the deadline passed first", provider=self.provider)
            timer = left if timer is None else min(timer, left)
        if self.handles_timeout:  # _generate enforces it: give it the one in effect
            params.timeout, timer = timer, None
        started = time.monotonic()
        with self._mapped_errors(timer if timer is not None else params.timeout):
            client = self._get_client()
            async with asyncio.timeout(timer):
                response = await self._generate(client, msgs, params)
        response.latency_s = time.monotonic() - started
        response.provider = self.provider
        response.finish_reason = finish_reason_of(response.finish_reason)
        if logger.isEnabledFor(logging.DEBUG):
            self._log_done(response)
        return response

    def stream_content_async(self, messages: Messages, **kwargs: Any) -> LlmStream:
        """Send ``messages`` and iterate over text deltas; ``.response`` holds usage at the end.

        Messages are validated at once. A failure before the first delta is retried like any
        call; after it, it is raised. To stop early, use ``async with`` or ``aclose()``.
        """
        if kwargs.get("output_schema") is not None:
            raise LlmRequestError(
                "a stream cannot have an output_schema: use generate_async(..., "
                "output_schema=...) for a validated value",
                provider=self.provider,
            )
        msgs = normalize_messages(messages, provider=self.provider)
        return LlmStream(self, msgs, self._params(kwargs), kwargs)

    def generate_content(self, messages: Messages, **kwargs: Any) -> str:
        """Synchronous :meth:`generate_content_async`, for scripts outside an event loop.

        Each call runs its own event loop, so its client (and connections) is closed after it.
        """
        return self._run_sync("generate_content", self.generate_content_async, messages, kwargs)

    def prepare(self) -> None:
        """Make the SDK client for the running event loop now (importing the SDK), rather
        than on the first call: for callers about to put many calls in flight, since the
        import holds the loop for up to a second. Raises what a call would (a missing extra:
        :class:`LlmNotInstalledError`). Must be called with a loop running."""
        self._get_client()

    async def aclose(self) -> None:
        """Close the SDK client. The instance can still be used: a new client is made."""
        client, loop = self._client, self._client_loop
        self._client, self._client_loop = None, None
        if client is None:
            return
        if loop is not None and loop is not asyncio.get_running_loop():
            # Its connections belong to another (usually finished) loop: they cannot be closed
            # from here, and are dropped with the client.
            logger.debug("%s: dropping a client made on another event loop", self.provider)
            return
        try:
            await self._close_client(client)
        except Exception as error:  # closing is best effort; the call results stand
            logger.debug("%s: closing the client failed: %s", self.provider, self._redact(error))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = f", base_url={self._redact(self.base_url)!r}" if self.base_url else ""
        return f"{type(self).__name__}(model={self.model!r}{where})"

    # ----------------------------------------------------------------- pipeline

    def _params(self, kwargs: dict[str, Any]) -> CallParams:
        if not kwargs and not self.provider_options:  # the instance's settings as they are
            return CallParams(self.model, self.max_tokens, self.temperature, self.timeout, {})
        options = {**self.provider_options, **kwargs}
        return CallParams(
            model=options.pop("model", None) or self.model,
            max_tokens=options.pop("max_tokens", self.max_tokens),
            temperature=options.pop("temperature", self.temperature),
            timeout=options.pop("timeout", self.timeout),
            tools=(tools := self._checked_tools(options.pop("tools", None))),
            tool_choice=self._checked_tool_choice(options.pop("tool_choice", None), tools),
            output=options.pop("output", None),
            options=options,
        )

    def _checked_tool_choice(self, choice: Any, tools: tuple[Tool, ...]) -> str | None:
        """``tool_choice=``: ``auto``, ``required``, ``none`` or the name of one of ``tools``."""
        if choice is None:
            return None
        if not isinstance(choice, str) or not choice:
            raise LlmRequestError(
                f"tool_choice must be 'auto', 'required', 'none' or a tool's name, not {choice!r}",
                provider=self.provider,
            )
        if choice in ("auto", "required", "none"):
            return choice
        if choice not in {tool.name for tool in tools}:
            given = ", ".join(tool.name for tool in tools) or "none"
            raise LlmRequestError(
                f"tool_choice names tool {choice!r}, which the call was not given (given: {given})",
                provider=self.provider,
            )
        return choice

    def _checked_tools(self, tools: Any) -> tuple[Tool, ...]:
        """``tools=`` as a tuple of :class:`Tool`; refused when this provider takes none."""
        if not tools:
            return ()
        if isinstance(tools, Tool) or not isinstance(tools, list | tuple):
            raise LlmRequestError(
                f"tools must be a list of Tool, not {type(tools).__name__}",
                provider=self.provider,
            )
        bad = [t for t in tools if not isinstance(t, Tool)]
        if bad:
            raise LlmRequestError(
                f"tools must be Tool instances, not {type(bad[0]).__name__}",
                provider=self.provider,
            )
        if not self.supports_tools:
            why = f" ({self.no_tools_reason})" if self.no_tools_reason else ""
            raise LlmConfigurationError(
                f"{type(self).__name__} ({self.provider}) cannot call tools{why}: give this "
                "agent no tools, or use a provider that supports them",
                provider=self.provider,
            )
        names = [t.name for t in tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LlmRequestError(f"two tools share the name {dupes[0]!r}", provider=self.provider)
        return tuple(tools)

    def _get_client(self) -> Any:
        """The client for the running loop (clients hold connections bound to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            if self._client is not None:
                logger.debug("%s: new event loop, new client", self.provider)
            with self._mapped_errors():
                self._client = self._create_client()
            self._client_loop = loop
        return self._client

    @contextlib.contextmanager
    def _mapped_errors(self, timeout: float | None = None) -> Iterator[None]:
        """Turn any exception of a call into an :class:`LlmError` without the key in its text."""
        try:
            yield
        except Exception as error:
            mapped = self._as_llm_error(error, timeout)
            if mapped is error:
                raise
            raise mapped from mapped.__cause__

    def _as_llm_error(self, error: Exception, timeout: float | None) -> LlmError:
        """``error`` as an :class:`LlmError` naming this provider, the key taken out of it.

        An exception that is not an :class:`LlmError` is mapped (``_map_error``, else a timeout
        or an unexpected response) and kept as the result's ``__cause__`` for debugging, unless
        its text would show the key.
        """
        if isinstance(error, LlmError):
            self._claim(error)
            return error
        mapped = self._map_error(error)
        if mapped is None and isinstance(error, TimeoutError):
            within = f" within {timeout:g}s" if timeout is not None else ""
            mapped = LlmTimeoutError(f"no answer{within}")
        elif mapped is None:
            mapped = LlmResponseError(
                f"unexpected {type(error).__name__}: {error}", retryable=False
            )
        self._claim(mapped)
        # As ``raise mapped from error`` would (``from None`` if it would show the key).
        mapped.__cause__ = error if self._redact_exception(error) else None
        mapped.__suppress_context__ = True
        return mapped

    def _claim(self, error: LlmError) -> None:
        """Name this provider on ``error`` and take the key out of its text."""
        if error.provider is None:
            error.provider = self.provider
        error.message = self._redact(error.message)
        error.args = tuple(self._redact(a) if isinstance(a, str) else a for a in error.args)

    def _redact(self, text: object) -> str:
        """``text`` with this instance's key masked (:func:`coditect_core.secrets.mask`)."""
        return mask(str(text), [self._api_key.get()] if self._api_key else [])

    def _redact_exception(self, error: BaseException) -> bool:
        """Mask the key in ``error.args``, in place; ``False`` if it still shows in its text."""
        if not self._api_key:
            return True
        with contextlib.suppress(Exception):
            error.args = tuple(self._redact(a) if isinstance(a, str) else a for a in error.args)
        key = self._api_key.get()
        with contextlib.suppress(Exception):
            return key not in str(error) and key not in repr(error)
        return False

    def _log_done(self, response: LlmResponse) -> None:
        logger.debug(
            "%s %s: %d+%d tokens in %.3fs, %d attempt(s)",
            self.provider,
            response.model,
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
            response.latency_s,
            response.attempts,
        )

    def _run_sync(
        self,
        method: str,
        fn: Callable[..., Coroutine[Any, Any, _T]],
        messages: Messages,
        kwargs: dict[str, Any],
    ) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise LlmConfigurationError(
                f"{method}() was called inside a running event loop, which it would block: "
                f"use `await {method}_async(...)` there",
                provider=self.provider,
            )
        return asyncio.run(self._closing(fn(messages, **kwargs)))

    async def _closing(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro``, then close the client it made on this (short-lived) loop."""
        try:
            return await coro
        finally:
            if self._client_loop is asyncio.get_running_loop():
                await self.aclose()


def output_modes_of(cls: type[BaseLlm]) -> tuple[OutputMode, ...]:
    """The typed-output modes of provider class ``cls``, best first (see
    :meth:`BaseLlm.output_modes`)."""
    return _output_modes(cls.native_output, cls.supports_tools)


def _output_modes(native: bool, tools: bool) -> tuple[OutputMode, ...]:
    modes = [OutputMode.NATIVE] if native else []
    if tools:
        modes.append(OutputMode.TOOL)
    return (*modes, OutputMode.PROMPTED)


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
            finish_reason=finish_reason_of(state.finish_reason),
            attempts=attempts,
            latency_s=time.monotonic() - started,
            provider=llm.provider,
            tool_calls=list(state.tool_calls),
        )
        observer.finished(self.response)
        llm._log_done(self.response)


async def _aclose(iterator: AsyncIterator[str]) -> None:
    """Close a provider's stream if it can be closed (async generators can)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()

"""``Claude``: Anthropic's Messages API through the official ``anthropic`` SDK (``AsyncAnthropic``).

System messages go to the separate ``system`` field; consecutive turns of one role are merged,
since the API wants strict user/assistant alternation. ``max_tokens`` is required by the API:
4096 when not set. The SDK is imported on the first call, with its own retries off.

The Messages API of the current SDK (anthropic 2.x) has no sampling parameters: a
``temperature`` is not sent (a warning is logged once); a model or proxy that still takes it
can get it through ``provider_options={"extra_body": {"temperature": 0.2}}``.

Finish reasons are reported in OpenAI's vocabulary: ``end_turn``/``stop_sequence`` -> ``stop``,
``max_tokens``/``model_context_window_exceeded`` -> ``length``, ``tool_use`` -> ``tool_calls``;
a ``refusal`` is an :class:`LlmContentFilterError`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, ClassVar

from ..errors import (
    LlmConfigurationError,
    LlmConnectionError,
    LlmContentFilterError,
    LlmError,
    LlmNotInstalledError,
    LlmRequestError,
    LlmResponseError,
    LlmTimeoutError,
)
from ._http_errors import (
    describe,
    empty_reply,
    error_for_status,
    json_field,
    short,
    transport_error,
)
from .base_llm import BaseLlm, CallParams, LlmResponse, StreamState, Usage
from .messages import Message, merge_consecutive, split_system

__all__ = ["Claude"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 4096

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}

# Anthropic's error types, for errors that arrive inside a stream (HTTP status 200).
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _usage(usage: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``: all are prompt."""
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    prompt = (getattr(usage, "input_tokens", None) or 0) + read + written
    return Usage(
        prompt,
        getattr(usage, "output_tokens", None) or 0,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )


class Claude(BaseLlm):
    """Anthropic's Claude models.

    ``base_url`` is the API root, as the SDK means it (default ``https://api.anthropic.com``).
    ``provider_options`` go to ``messages.create`` (``stop_sequences``, ``thinking``,
    ``output_config``, ``metadata``, ``extra_headers``, ``extra_body``...), except the client
    options ``http_client``, ``default_headers`` and ``default_query``, which go to
    ``AsyncAnthropic``.
    """

    provider = "anthropic-claude"
    default_model: ClassVar[str | None] = "claude-sonnet-5-5"
    default_max_tokens: ClassVar[int | None] = DEFAULT_MAX_TOKENS
    api_key_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    native_output: ClassVar[bool] = True  # structured outputs: output_config.format
    client_options: ClassVar[frozenset[str]] = frozenset(
        {"http_client", "default_headers", "default_query"}
    )
    _warned_temperature: bool = False

    def _create_client(self) -> Any:
        try:
            import anthropic
        except ImportError as error:
            raise LlmNotInstalledError(
                "the anthropic SDK is not installed: pip install 'coditect-core[anthropic]'",
                provider=self.provider,
            ) from error
        settings: dict[str, Any] = dict(self.client_settings)
        if self.timeout is not None:
            settings.setdefault("timeout", self.timeout)
        return anthropic.AsyncAnthropic(
            api_key=self._api_key.get() if self._api_key else None,
            base_url=self.base_url,
            max_retries=0,
            **settings,
        )

    # ----------------------------------------------------------------- calls

    def _request(self, messages: list[Message], params: CallParams, stream: bool) -> dict[str, Any]:
        system, turns = split_system(messages)
        kwargs: dict[str, Any] = {
            "model": params.model,
            "messages": merge_consecutive(turns),
            "max_tokens": params.max_tokens
            if params.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
        }
        if system is not None:
            kwargs["system"] = system
        if params.temperature is not None and not self._warned_temperature:
            self._warned_temperature = True
            logger.warning(
                "%r: the Messages API takes no temperature; it is not sent "
                "(pass extra_body={'temperature': ...} for a model that still takes it)",
                self,
            )
        if params.timeout is not None:
            kwargs["timeout"] = params.timeout
        if stream:
            kwargs["stream"] = True
        kwargs.update(params.options)
        if params.output is not None:
            kwargs["output_config"] = output_config(params.output, kwargs.get("output_config"))
        return kwargs

    def _finish(self, stop_reason: str | None) -> str | None:
        if stop_reason == "refusal":
            raise LlmContentFilterError("the model refused to answer", provider=self.provider)
        return _STOP_REASONS.get(stop_reason, stop_reason) if stop_reason else None

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        message = await client.messages.create(**self._request(messages, params, stream=False))
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise LlmResponseError(
                f"the response is not a message: {short(message, 200)}", provider=self.provider
            )
        finish = self._finish(getattr(message, "stop_reason", None))
        text = "".join(
            block.text
            for block in content
            if getattr(block, "type", None) == "text" and isinstance(block.text, str)
        )
        if not text and finish != "tool_calls":
            raise empty_reply(self.provider, finish)
        return LlmResponse(
            text=text,
            model=getattr(message, "model", None) or params.model,
            usage=_usage(getattr(message, "usage", None)),
            finish_reason=finish,
            response_id=_response_id(getattr(message, "id", None)),
        )

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> Any:
        stream = await client.messages.create(**self._request(messages, params, stream=True))
        prompt = Usage()
        stopped = produced = False
        try:
            async for event in stream:
                kind = getattr(event, "type", None)
                if kind == "content_block_delta":
                    delta = event.delta
                    if getattr(delta, "type", None) == "text_delta" and delta.text:
                        produced = True
                        yield delta.text
                elif kind == "message_start":
                    state.model = getattr(event.message, "model", None)
                    prompt = _usage(event.message.usage)
                    state.usage = prompt
                elif kind == "message_delta":
                    state.finish_reason = self._finish(event.delta.stop_reason)
                    # Output counts are cumulative; input counts repeat message_start's or are new.
                    late = _usage(event.usage)
                    early = late if late.prompt_tokens else prompt
                    state.usage = Usage(
                        early.prompt_tokens,
                        late.completion_tokens,
                        cache_read_tokens=early.cache_read_tokens,
                        cache_write_tokens=early.cache_write_tokens,
                    )
                elif kind == "message_stop":
                    stopped = True
        finally:
            await stream.close()
        if not stopped:
            raise LlmResponseError("the stream ended before message_stop", provider=self.provider)
        if not produced and state.finish_reason != "tool_calls":
            raise empty_reply(self.provider, state.finish_reason)

    # ----------------------------------------------------------------- errors

    def _map_error(self, error: Exception) -> LlmError | None:
        anthropic = sys.modules.get("anthropic")
        p = self.provider
        if anthropic is not None and isinstance(error, anthropic.AnthropicError):
            if isinstance(error, anthropic.APITimeoutError):
                return LlmTimeoutError("no answer within the timeout", provider=p)
            if isinstance(error, anthropic.APIConnectionError):
                cause = error.__cause__
                detail = f" ({describe(cause)})" if cause else ""
                return LlmConnectionError(f"connection failed{detail}", provider=p)
            if isinstance(error, anthropic.APIStatusError):
                kind = json_field(error.body, "error", "type")
                status = error.status_code
                if status < 400:  # an error event inside a 200 stream
                    status = _TYPE_STATUS.get(kind or "", 500)
                return error_for_status(
                    status,
                    json_field(error.body, "error", "message") or error.message,
                    provider=p,
                    headers=error.response.headers,
                    codes=(kind, getattr(error, "error_code", None)),
                )
            if isinstance(error, anthropic.APIResponseValidationError):
                return LlmResponseError(f"invalid response: {short(error)}", provider=p)
            if isinstance(error, anthropic.APIError):
                return LlmResponseError(short(error), provider=p)
            return LlmConfigurationError(short(error), provider=p)
        mapped = transport_error(error, provider=p)
        if mapped is None and isinstance(error, TypeError | ValueError):
            mapped = LlmRequestError(f"invalid request: {short(error)}", provider=p)
        return mapped


def output_config(output: dict[str, Any], given: Any = None) -> dict[str, Any]:
    """A native typed output (:attr:`CallParams.output`) as the Messages API's structured output,
    ``output_config.format`` (beside what the agent's own ``output_config`` says)."""
    config = dict(given) if isinstance(given, dict) else {}
    config["format"] = {"type": "json_schema", "schema": output["schema"]}
    return config


def _response_id(value: object) -> str | None:
    """The provider's response id, if it gave one."""
    return value if isinstance(value, str) and value else None

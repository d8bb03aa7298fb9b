"""``Gpt``: OpenAI chat completions through the official ``openai`` SDK; and ``OpenAICompatible``.

``OpenAICompatible`` is the same wire format for servers that speak it (Ollama, vLLM, LM Studio,
llama.cpp's server): it needs a ``base_url`` ending in ``/v1`` and no key. The SDK is imported
on the first call; its own retries are off (``max_retries=0``), ours are the only ones.

Finish reasons are OpenAI's own (``stop``, ``length``, ``tool_calls``), the vocabulary every
provider here reports.

Tool calling: ``tools`` as functions (``strict`` when the tool asks for it), ``tool_choice`` as
``auto``/``required``/``none`` or a named function; an assistant's calls as ``tool_calls`` with
JSON text arguments, a result as a ``tool`` message (an error result's content starts with
:data:`TOOL_ERROR_PREFIX`: the format has no error flag). Streamed calls are assembled from their
deltas by index. A reply with calls finishes ``tool_calls`` even when a compatible server says
``stop`` (Ollama does).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import (
    LlmConfigurationError,
    LlmConnectionError,
    LlmContentFilterError,
    LlmError,
    LlmNotInstalledError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
)
from ._http_errors import (
    describe,
    empty_reply,
    error_for_status,
    is_context_length,
    json_field,
    short,
    transport_error,
)
from .base_llm import BaseLlm, CallParams, LlmResponse, StreamState, Usage
from .datatypes import finish_with_calls
from .messages import Message
from .tool_types import Tool, ToolCall, ToolChoice

__all__ = ["TOOL_ERROR_PREFIX", "Gpt", "OpenAICompatible"]

TOOL_ERROR_PREFIX = "ERROR: "
"""Put before an error result's content (OpenAI's ``tool`` message has no error flag)."""

logger = logging.getLogger(__name__)


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    total = getattr(usage, "total_tokens", None)
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    return Usage(
        getattr(usage, "prompt_tokens", None) or 0,
        getattr(usage, "completion_tokens", None) or 0,
        total if isinstance(total, int) else -1,
        cache_read_tokens=cached if isinstance(cached, int) else 0,
    )


class Gpt(BaseLlm):
    """OpenAI's models (``AsyncOpenAI``); with ``base_url``, any OpenAI-compatible server.

    ``provider_options`` go to ``chat.completions.create`` (``top_p``, ``seed``,
    ``reasoning_effort``, ``extra_headers``, ``extra_body``...), except the client options
    ``http_client``, ``default_headers``, ``default_query``, ``organization``, ``project``
    and ``websocket_base_url``, which go to ``AsyncOpenAI``.
    """

    provider = "openai-gpt"
    default_model: ClassVar[str | None] = "gpt-5.4-mini"
    supports_tools = True
    api_key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    client_options: ClassVar[frozenset[str]] = frozenset(
        {
            "http_client",
            "default_headers",
            "default_query",
            "organization",
            "project",
            "websocket_base_url",
        }
    )
    native_output: ClassVar[bool] = True  # response_format json_schema
    # OpenAI's current models take max_completion_tokens (reasoning models refuse max_tokens).
    max_tokens_param: ClassVar[str] = "max_completion_tokens"
    # Ask for usage at the end of a stream; switched off for a server that refuses the option.
    stream_usage: bool = True

    # ----------------------------------------------------------------- client

    def _sdk_api_key(self) -> str:
        return self._api_key.get() if self._api_key else ""

    def _response_format(self, output: dict[str, Any]) -> dict[str, Any]:
        """A native typed output as this server's ``response_format``."""
        return response_format(output)

    def _create_client(self) -> Any:
        try:
            import openai
        except ImportError as error:
            raise LlmNotInstalledError(
                "the openai SDK is not installed: pip install 'coditect-core[openai]'",
                provider=self.provider,
            ) from error
        settings: dict[str, Any] = dict(self.client_settings)
        if self.timeout is not None:
            settings.setdefault("timeout", self.timeout)
        return openai.AsyncOpenAI(
            api_key=self._sdk_api_key(),
            base_url=self.base_url,
            max_retries=0,
            **settings,
        )

    # ----------------------------------------------------------------- calls

    def _request(self, messages: list[Message], params: CallParams, stream: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": params.model, "messages": wire_messages(messages)}
        if params.tools:
            kwargs["tools"] = wire_tools(params.tools)
        if params.tools and params.tool_choice is not None:
            kwargs["tool_choice"] = wire_tool_choice(params.tool_choice)
        if params.max_tokens is not None:
            kwargs[self.max_tokens_param] = params.max_tokens
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.timeout is not None:
            kwargs["timeout"] = params.timeout
        if stream:
            kwargs["stream"] = True
            if self.stream_usage:
                kwargs["stream_options"] = {"include_usage": True}
        if params.output is not None:
            kwargs["response_format"] = self._response_format(params.output)
        kwargs.update(params.options)
        return kwargs

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        completion = await client.chat.completions.create(
            **self._request(messages, params, stream=False)
        )
        choices = getattr(completion, "choices", None)
        if not choices:
            raise LlmResponseError(
                f"the response is not a chat completion with choices: {short(completion, 200)}",
                provider=self.provider,
            )
        choice = choices[0]
        finish = getattr(choice, "finish_reason", None)
        message = getattr(choice, "message", None)
        self._check_filtered(finish, getattr(message, "refusal", None))
        text = getattr(message, "content", None)
        calls = [_tool_call(i, c) for i, c in enumerate(getattr(message, "tool_calls", None) or ())]
        if not isinstance(text, str) or not text:
            if not calls:
                raise empty_reply(self.provider, finish)
            text = ""
        return LlmResponse(
            text=text,
            model=getattr(completion, "model", None) or params.model,
            usage=_usage(getattr(completion, "usage", None)) or Usage(),
            finish_reason=finish_with_calls(finish, calls),
            response_id=_response_id(getattr(completion, "id", None)),
            tool_calls=calls,
        )

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> Any:
        kwargs = self._request(messages, params, stream=True)
        try:
            stream = await client.chat.completions.create(**kwargs)
        except Exception as error:
            if "stream_options" not in kwargs or not self._refuses_stream_options(error):
                raise
            # Some OpenAI-compatible servers refuse stream_options: stream without usage.
            logger.info("%s: the server refuses stream_options; streaming without usage", self)
            self.stream_usage = False
            del kwargs["stream_options"]
            stream = await client.chat.completions.create(**kwargs)
        produced = False
        calls: dict[int, dict[str, str]] = {}  # by index: id, name, arguments so far
        try:
            async for chunk in stream:
                usage = _usage(getattr(chunk, "usage", None))
                if usage is not None:
                    state.usage = usage
                if getattr(chunk, "model", None):
                    state.model = chunk.model
                for choice in getattr(chunk, "choices", None) or ():
                    if getattr(choice, "index", 0) != 0:
                        continue
                    delta = getattr(choice, "delta", None)
                    self._check_filtered(None, getattr(delta, "refusal", None))
                    content = getattr(delta, "content", None)
                    if content:
                        produced = True
                        yield content
                    for part in getattr(delta, "tool_calls", None) or ():
                        _add_call_delta(calls, part)
                    if choice.finish_reason:
                        state.finish_reason = choice.finish_reason
                        self._check_filtered(choice.finish_reason, None)
        finally:
            await stream.close()
        if state.finish_reason is None:
            raise LlmResponseError(
                "the stream ended before the model finished (no finish_reason)",
                provider=self.provider,
            )
        if calls:
            state.tool_calls = [
                ToolCall.from_json(c["id"] or f"call_{i}", c["name"], c["arguments"])
                for i, c in sorted(calls.items())
            ]
            state.finish_reason = finish_with_calls(state.finish_reason, calls)
        if not produced and not state.tool_calls and state.finish_reason != "tool_calls":
            raise empty_reply(self.provider, state.finish_reason)

    def _check_filtered(self, finish: str | None, refusal: str | None) -> None:
        if finish == "content_filter":
            raise LlmContentFilterError(
                "the completion was stopped by the content filter", provider=self.provider
            )
        if refusal:
            raise LlmContentFilterError(
                f"the model refused: {short(refusal)}", provider=self.provider
            )

    @staticmethod
    def _refuses_stream_options(error: Exception) -> bool:
        openai = sys.modules.get("openai")
        return (
            openai is not None
            and isinstance(error, openai.APIStatusError)
            and error.status_code in (400, 422)
            and "stream_options" in f"{error.message} {error.body}"
        )

    # ----------------------------------------------------------------- errors

    def _map_error(self, error: Exception) -> LlmError | None:
        openai = sys.modules.get("openai")
        p = self.provider
        if openai is not None and isinstance(error, openai.OpenAIError):
            if isinstance(error, openai.APITimeoutError):
                return LlmTimeoutError("no answer within the timeout", provider=p)
            if isinstance(error, openai.APIConnectionError):
                cause = error.__cause__
                detail = f" ({describe(cause)})" if cause else ""
                return LlmConnectionError(f"connection failed{detail}", provider=p)
            if isinstance(error, openai.APIStatusError):
                return error_for_status(
                    error.status_code,
                    json_field(error.body, "message") or error.message,
                    provider=p,
                    headers=error.response.headers,
                    codes=(error.code, error.type),
                )
            if isinstance(error, openai.APIResponseValidationError):
                return LlmResponseError(f"invalid response: {short(error)}", provider=p)
            if isinstance(error, openai.ContentFilterFinishReasonError):
                return LlmContentFilterError(str(error), provider=p)
            if isinstance(error, openai.LengthFinishReasonError):
                return LlmResponseError(str(error), provider=p, retryable=False)
            if isinstance(error, openai.APIError):
                return self._stream_error(error)
            return LlmConfigurationError(short(error), provider=p)
        mapped = transport_error(error, provider=p)
        if mapped is None and isinstance(error, TypeError):
            mapped = LlmRequestError(f"invalid argument: {short(error)}", provider=p)
        return mapped

    def _stream_error(self, error: Any) -> LlmError:
        """An error event inside a stream (no HTTP status): judged by its type and code."""
        kind = f"{error.type or ''} {error.code or ''}"
        message = short(error.message)
        if "rate_limit" in kind:
            return LlmRateLimitError(message, provider=self.provider, status_code=None)
        if is_context_length(error.message, error.code, error.type):
            return error_for_status(400, error.message, provider=self.provider, codes=(error.code,))
        if "invalid_request" in kind:
            return LlmRequestError(message, provider=self.provider)
        return LlmServerError(message, provider=self.provider)


class OpenAICompatible(Gpt):
    """An OpenAI-compatible server: Ollama, vLLM, LM Studio, llama.cpp's server...

    ``base_url`` is required (e.g. ``http://localhost:11434/v1`` for Ollama); a key is optional
    and never read from ``OPENAI_API_KEY`` (that key is for OpenAI, not for this server).
    ``structured_output`` (:data:`STRUCTURED_OUTPUT_STYLES`) says how it is asked for a typed
    output: ``json_schema`` (the default) or ``json_object`` (llama-cpp-python's server).
    """

    provider = "openai-compatible"
    default_model: ClassVar[str | None] = None
    api_key_env: ClassVar[tuple[str, ...]] = ()
    # Most of these servers know max_tokens; fewer know max_completion_tokens.
    max_tokens_param: ClassVar[str] = "max_tokens"

    def __init__(
        self, model: str | None = None, api_key: str | None = None, **settings: Any
    ) -> None:
        style = settings.pop("structured_output", "json_schema")
        if style not in STRUCTURED_OUTPUT_STYLES:
            raise LlmConfigurationError(
                f"structured_output {style!r} is not one of {', '.join(STRUCTURED_OUTPUT_STYLES)}",
                provider=self.provider,
            )
        self.structured_output: str = style
        if not settings.get("base_url"):
            raise LlmConfigurationError(
                "OpenAICompatible needs base_url, the server's address ending in /v1 "
                "(e.g. http://localhost:11434/v1 for Ollama)",
                provider=self.provider,
            )
        super().__init__(model, api_key, **settings)

    def _sdk_api_key(self) -> str:
        # The SDK insists on a key; local servers ignore it. Never let it read OPENAI_API_KEY.
        return self._api_key.get() if self._api_key else "no-key"

    def _response_format(self, output: dict[str, Any]) -> dict[str, Any]:
        if self.structured_output == "json_object":  # llama-cpp-python's server
            return {"type": "json_object", "schema": output["schema"]}
        return response_format(output)


STRUCTURED_OUTPUT_STYLES = ("json_schema", "json_object")
"""How an :class:`OpenAICompatible` server is asked for a typed output (its ``structured_output``
setting): ``json_schema`` (OpenAI's ``response_format``; llama.cpp's llama-server, vLLM,
Ollama, LM Studio) or ``json_object`` with a ``schema`` (llama-cpp-python's server, whose
grammar then holds the model to it)."""


def response_format(output: dict[str, Any]) -> dict[str, Any]:
    """A native typed output (:attr:`CallParams.output`) as ``response_format``: json_schema,
    ``strict`` when the schema allows it (every object closed, every property required)."""
    schema = output["schema"]
    return {
        "type": "json_schema",
        "json_schema": {"name": output["name"], "schema": schema, "strict": _strictable(schema)},
    }


def _strictable(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes ``schema`` as it is."""
    if isinstance(schema, list):
        return all(_strictable(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", ())) != set(props):
            return False
    return all(_strictable(v) for k, v in schema.items() if k not in ("enum", "const", "default"))


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages in the chat format: an assistant's calls as ``tool_calls`` (arguments as JSON
    text), a result as a ``tool`` message (an error's content prefixed, the format has no flag).
    Plain messages go as ``{"role", "content"}``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            content = m["content"]
            if m.get("is_error"):
                content = TOOL_ERROR_PREFIX + content
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": content})
        elif "tool_calls" in m:
            out.append(
                {
                    "role": "assistant",
                    "content": m["content"] or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments_json()},
                        }
                        for call in m["tool_calls"]
                    ],
                }
            )
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def wire_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Tools as chat-completions functions (``strict`` only when a tool asks for it)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
        if tool.description:
            function["description"] = tool.description
        if tool.strict:
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def wire_tool_choice(choice: ToolChoice) -> Any:
    """``auto``, ``required``, ``none`` as they are; a tool's name as a named function."""
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _tool_call(index: int, call: Any) -> ToolCall:
    """A response's tool call (arguments that are not a JSON object are kept as text; a server
    that gives no id gets ``call_<index>``)."""
    function = getattr(call, "function", None)
    return ToolCall.from_json(
        str(getattr(call, "id", None) or f"call_{index}"),
        str(getattr(function, "name", None) or ""),
        getattr(function, "arguments", None),
    )


def _add_call_delta(calls: dict[int, dict[str, str]], part: Any) -> None:
    """Add one streamed tool-call delta to the call at its index."""
    index = getattr(part, "index", None)
    if not isinstance(index, int):
        index = len(calls)
    call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if getattr(part, "id", None):
        call["id"] = part.id
    function: Any = getattr(part, "function", None)
    if getattr(function, "name", None) and not call["name"]:
        call["name"] = function.name
    if getattr(function, "arguments", None):
        call["arguments"] += function.arguments


def _response_id(value: object) -> str | None:
    """The provider's response id, if it gave one."""
    return value if isinstance(value, str) and value else None

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

Tool calling: ``tools`` with ``input_schema``, ``tool_choice`` as ``{"type": auto|any|none|tool}``,
an assistant's calls as ``tool_use`` blocks after its text, results as ``tool_result`` blocks
(``is_error`` when the tool failed). Every result of one assistant turn goes into the one user
message after it, with any user text that follows them (the API refuses a ``tool_use`` whose
``tool_result`` is not in the next message). Streamed calls are assembled from their
``input_json_delta`` pieces.
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
from .datatypes import finish_with_calls
from .messages import Message, split_system
from .tool_types import Tool, ToolCall, ToolChoice

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
    supports_tools = True
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
            "messages": wire_messages(turns),
            "max_tokens": params.max_tokens
            if params.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
        }
        if system is not None:
            kwargs["system"] = system
        if params.tools:
            kwargs["tools"] = wire_tools(params.tools)
            if params.tool_choice is not None:
                kwargs["tool_choice"] = wire_tool_choice(params.tool_choice)
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
        calls = [
            _tool_call(block) for block in content if getattr(block, "type", None) == "tool_use"
        ]
        if not text and not calls:
            raise empty_reply(self.provider, finish)
        return LlmResponse(
            text=text,
            model=getattr(message, "model", None) or params.model,
            usage=_usage(getattr(message, "usage", None)),
            finish_reason=finish_with_calls(finish, calls),
            response_id=_response_id(getattr(message, "id", None)),
            tool_calls=calls,
        )

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> Any:
        stream = await client.messages.create(**self._request(messages, params, stream=True))
        prompt = Usage()
        stopped = produced = False
        calls: dict[int, dict[str, str]] = {}  # tool_use blocks by index: id, name, JSON so far
        try:
            async for event in stream:
                kind = getattr(event, "type", None)
                if kind == "content_block_delta":
                    delta = event.delta
                    delta_type = getattr(delta, "type", None)
                    if delta_type == "text_delta" and delta.text:
                        produced = True
                        yield delta.text
                    elif delta_type == "input_json_delta" and event.index in calls:
                        calls[event.index]["json"] += delta.partial_json or ""
                elif kind == "content_block_start":
                    block = event.content_block
                    if getattr(block, "type", None) == "tool_use":
                        calls[event.index] = {"id": block.id, "name": block.name, "json": ""}
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
        if calls:
            state.tool_calls = [
                ToolCall.from_json(c["id"], c["name"], c["json"]) for _, c in sorted(calls.items())
            ]
            state.finish_reason = finish_with_calls(state.finish_reason, calls)
        if not produced and not state.tool_calls and state.finish_reason != "tool_calls":
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


def wire_messages(turns: list[Message]) -> list[dict[str, Any]]:
    """Messages (system taken out) in the Messages API's shape, strictly alternating.

    Consecutive turns of one role are merged (plain texts joined by a blank line); an assistant's
    calls are ``tool_use`` blocks after its text; ``tool`` messages are ``tool_result`` blocks of
    a user message, so every result of one turn, and a user text after them, share the one user
    message after the calls. A conversation that starts with the assistant gets a
    ``"(continue)"`` user turn first.
    """
    out: list[dict[str, Any]] = []
    for m in turns:
        role = "assistant" if m["role"] == "assistant" else "user"
        content: str | list[dict[str, Any]]
        if m["role"] == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"]}
            if m["content"]:  # optional, and an empty text is refused
                block["content"] = m["content"]
            if m.get("is_error"):
                block["is_error"] = True
            content = [block]
        elif "tool_calls" in m:
            content = [{"type": "text", "text": m["content"]}] if m["content"] else []
            content += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                for c in m["tool_calls"]
            ]
        else:
            content = m["content"]
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _joined(out[-1]["content"], content)
        else:
            out.append({"role": role, "content": content})
    if out and out[0]["role"] == "assistant":
        out.insert(0, {"role": "user", "content": "(continue)"})
    return out


def _joined(
    first: str | list[dict[str, Any]], second: str | list[dict[str, Any]]
) -> str | list[dict[str, Any]]:
    """Two contents of one role as one: texts joined by a blank line, else a list of blocks."""
    if isinstance(first, str) and isinstance(second, str):
        return first + "\n\n" + second

    def blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}] if content else []
        return content

    return blocks(first) + blocks(second)


def wire_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Tools in the Messages API's shape (``name``, ``description``, ``input_schema``)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        item: dict[str, Any] = {"name": tool.name, "input_schema": dict(tool.parameters)}
        if tool.description:
            item["description"] = tool.description
        out.append(item)
    return out


def wire_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    """``auto`` -> auto, ``required`` -> any, ``none`` -> none, a name -> that tool."""
    if choice == "required":
        return {"type": "any"}
    if choice in ("auto", "none"):
        return {"type": choice}
    return {"type": "tool", "name": choice}


def _tool_call(block: Any) -> ToolCall:
    """A ``tool_use`` block as a call (its ``input`` is already a JSON object)."""
    arguments = getattr(block, "input", None)
    if isinstance(arguments, dict):
        return ToolCall(str(block.id), str(block.name), arguments)
    return ToolCall(str(block.id), str(block.name), {}, invalid_arguments=str(arguments))


def _response_id(value: object) -> str | None:
    """The provider's response id, if it gave one."""
    return value if isinstance(value, str) and value else None

"""``Gemini``: Google's Gemini API through the official ``google-genai`` SDK (``client.aio``).

Not the deprecated ``google-generativeai``. System messages become ``system_instruction``,
``assistant`` turns the ``model`` role, consecutive turns of one role are merged. The SDK gets
its transport explicitly (an ``httpx2.AsyncClient``, so it never switches to aiohttp because
aiohttp happens to be installed) and ``HttpRetryOptions(attempts=1)``: our retries are the only
ones. Finish reasons are reported in OpenAI's vocabulary (``STOP`` -> ``stop``, ``MAX_TOKENS`` ->
``length``); a blocked prompt or a ``SAFETY``-like finish is an :class:`LlmContentFilterError`.

Tool calling: ``functionDeclarations`` with the full JSON Schema in ``parametersJsonSchema`` (the
older ``parameters`` takes an OpenAPI subset that refuses ``$defs``, ``$ref`` and
``additionalProperties``), ``toolConfig.functionCallingConfig`` (``AUTO``/``ANY``/``NONE``,
``allowedFunctionNames`` for a named tool). ``functionCall`` parts are calls; Gemini often gives
them no id, so such a call gets a stable one (:data:`MADE_ID_PREFIX`, the turn, the index and the
name), which is not sent back: its ``functionResponse`` is matched by name and order. Results
are ``functionResponse`` parts (``{"result": ...}``, or ``{"error": ...}`` for an error), all of
one turn in one content. A call's thought signature is kept (:attr:`ToolCall.signature`) and
sent back with it, as Gemini 3 requires. A reply with calls finishes ``tool_calls``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import (
    LlmContentFilterError,
    LlmError,
    LlmNotInstalledError,
    LlmRequestError,
    LlmResponseError,
)
from ._http_errors import (
    empty_reply,
    error_for_status,
    json_field,
    parse_retry_after,
    short,
    transport_error,
)
from .base_llm import BaseLlm, CallParams, LlmResponse, StreamState, Usage
from .datatypes import finish_with_calls
from .messages import Message, split_system
from .tool_types import Tool, ToolCall, ToolChoice

__all__ = ["MADE_ID_PREFIX", "Gemini"]

MADE_ID_PREFIX = "gemini-call-"
"""Starts the id of a call Gemini gave none (such an id is never sent back to it)."""

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


@dataclass(slots=True)
class _Client:
    """The SDK client and the connection pool we gave it (closed with it when it is ours)."""

    sdk: Any
    http: Any
    owns_http: bool

    @property
    def aio(self) -> Any:
        return self.sdk.aio


def _name(value: Any) -> str:
    """An enum member's value (``FinishReason.STOP`` -> ``"STOP"``), or the string itself."""
    return str(getattr(value, "value", value))


def _usage(meta: Any) -> Usage | None:
    if meta is None:
        return None
    total = getattr(meta, "total_token_count", None)
    return Usage(
        getattr(meta, "prompt_token_count", None) or 0,  # cached content included
        (getattr(meta, "candidates_token_count", None) or 0)
        + (getattr(meta, "thoughts_token_count", None) or 0),
        total if isinstance(total, int) else -1,
        cache_read_tokens=getattr(meta, "cached_content_token_count", None) or 0,
    )


def _retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "23s"``), if any."""
    items = json_field(details, "error", "details") or json_field(details, "details")
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            try:
                return max(float(str(item.get("retryDelay", "")).rstrip("s")), 0.0)
            except ValueError:
                return None
    return None


class Gemini(BaseLlm):
    """Google's Gemini models.

    ``base_url`` is the API root, as the SDK means it (default
    ``https://generativelanguage.googleapis.com/``; the API version is added to it).
    ``provider_options`` are fields of ``GenerateContentConfig`` (``top_p``, ``top_k``,
    ``stop_sequences``, ``safety_settings``, ``thinking_config``...), except the client options
    ``http_client`` (an ``httpx2.AsyncClient`` to send through), ``headers`` and
    ``api_version``.
    """

    provider = "google-gemini"
    default_model: ClassVar[str | None] = "gemini-3.8-flash"
    supports_tools = True
    api_key_env: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    client_options: ClassVar[frozenset[str]] = frozenset({"http_client", "headers", "api_version"})
    native_output: ClassVar[bool] = True  # responseMimeType + responseJsonSchema

    def _create_client(self) -> Any:
        try:
            import httpx2
            from google import genai
            from google.genai import types
        except ImportError as error:
            raise LlmNotInstalledError(
                "the google-genai SDK is not installed: pip install 'coditect-core[gemini]'",
                provider=self.provider,
            ) from error
        settings = dict(self.client_settings)
        http = settings.pop("http_client", None)
        owns_http = http is None
        if http is None:
            http = httpx2.AsyncClient(
                limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
            )
        options = types.HttpOptions(
            base_url=self.base_url,
            timeout=self._ms(self.timeout),
            httpx_async_client=http,
            retry_options=types.HttpRetryOptions(attempts=1),
            **settings,
        )
        sdk = genai.Client(
            api_key=self._api_key.get() if self._api_key else None,
            vertexai=False,
            http_options=options,
        )
        return _Client(sdk, http, owns_http)

    async def _close_client(self, client: _Client) -> None:
        try:
            await client.sdk.aio.aclose()
            client.sdk.close()
        finally:
            if client.owns_http:
                await client.http.aclose()

    @staticmethod
    def _ms(seconds: float | None) -> int | None:
        return None if seconds is None else max(int(seconds * 1000), 1)

    # ----------------------------------------------------------------- calls

    def _request(self, messages: list[Message], params: CallParams) -> tuple[list[Any], Any]:
        from google.genai import types

        system, turns = split_system(messages)
        contents = wire_contents(turns)
        config: dict[str, Any] = {}
        if system is not None:
            config["system_instruction"] = system
        if params.tools:
            config["tools"] = [{"function_declarations": wire_tools(params.tools)}]
            if params.tool_choice is not None:
                config["tool_config"] = {
                    "function_calling_config": wire_tool_choice(params.tool_choice)
                }
        if params.max_tokens is not None:
            config["max_output_tokens"] = params.max_tokens
        if params.temperature is not None:
            config["temperature"] = params.temperature
        if params.timeout != self.timeout:
            config["http_options"] = types.HttpOptions(timeout=self._ms(params.timeout))
        if params.output is not None:
            config.update(json_response_config(params.output))
        config.update(params.options)
        try:
            return contents, types.GenerateContentConfig(**config)
        except (TypeError, ValueError) as error:
            raise LlmRequestError(
                f"invalid generation settings: {short(error)}", provider=self.provider
            ) from error

    def _finish(self, candidate: Any) -> str | None:
        reason = getattr(candidate, "finish_reason", None)
        if reason is None:
            return None
        name = _name(reason)
        if name in _FILTERED:
            message = getattr(candidate, "finish_message", None)
            why = f": {short(message)}" if message else ""
            raise LlmContentFilterError(
                f"the reply was blocked ({name}){why}", provider=self.provider
            )
        return _FINISH.get(name, name.lower())

    def _check_prompt(self, response: Any) -> None:
        feedback = getattr(response, "prompt_feedback", None)
        reason = getattr(feedback, "block_reason", None)
        if reason is not None:
            message = getattr(feedback, "block_reason_message", None)
            why = f": {short(message)}" if message else ""
            raise LlmContentFilterError(
                f"the prompt was blocked ({_name(reason)}){why}", provider=self.provider
            )

    @staticmethod
    def _text(candidate: Any) -> str:
        parts = getattr(getattr(candidate, "content", None), "parts", None) or ()
        return "".join(p.text for p in parts if isinstance(p.text, str) and not p.thought)

    @staticmethod
    def _calls(candidate: Any, turn: int, first: int = 0) -> list[ToolCall]:
        """The candidate's ``functionCall`` parts as calls, numbered from ``first``."""
        parts = getattr(getattr(candidate, "content", None), "parts", None) or ()
        calls: list[ToolCall] = []
        for part in parts:
            call = getattr(part, "function_call", None)
            if call is None:
                continue
            name = str(getattr(call, "name", None) or "")
            index = first + len(calls)
            call_id = getattr(call, "id", None) or f"{MADE_ID_PREFIX}{turn}-{index}-{name}"
            args = getattr(call, "args", None)
            signature = getattr(part, "thought_signature", None)
            calls.append(
                ToolCall(
                    str(call_id),
                    name,
                    dict(args) if isinstance(args, dict) else {},
                    signature=base64.b64encode(signature).decode() if signature else None,
                )
            )
        return calls

    async def _generate(
        self, client: _Client, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        contents, config = self._request(messages, params)
        response = await client.aio.models.generate_content(
            model=params.model, contents=contents, config=config
        )
        self._check_prompt(response)
        candidates = getattr(response, "candidates", None)
        if not candidates:
            raise LlmResponseError("the response has no candidates", provider=self.provider)
        finish = self._finish(candidates[0])
        text = self._text(candidates[0])
        calls = self._calls(candidates[0], _turn(messages))
        if not text and not calls:
            raise empty_reply(self.provider, finish)
        return LlmResponse(
            text=text,
            model=getattr(response, "model_version", None) or params.model,
            usage=_usage(getattr(response, "usage_metadata", None)) or Usage(),
            finish_reason=finish_with_calls(finish, calls),
            response_id=_response_id(getattr(response, "response_id", None)),
            tool_calls=calls,
        )

    async def _stream(
        self, client: _Client, messages: list[Message], params: CallParams, state: StreamState
    ) -> Any:
        contents, config = self._request(messages, params)
        stream = await client.aio.models.generate_content_stream(
            model=params.model, contents=contents, config=config
        )
        produced = False
        turn = _turn(messages)
        try:
            async for chunk in stream:
                self._check_prompt(chunk)
                usage = _usage(getattr(chunk, "usage_metadata", None))
                if usage is not None:
                    state.usage = usage
                if getattr(chunk, "model_version", None):
                    state.model = chunk.model_version
                candidates = getattr(chunk, "candidates", None)
                if not candidates:
                    continue
                text = self._text(candidates[0])
                if text:
                    produced = True
                    yield text
                state.tool_calls += self._calls(candidates[0], turn, len(state.tool_calls))
                finish = self._finish(candidates[0])
                if finish is not None:
                    state.finish_reason = finish
        finally:
            await stream.aclose()
        if state.finish_reason is None:
            raise LlmResponseError(
                "the stream ended before the model finished (no finishReason)",
                provider=self.provider,
            )
        if state.tool_calls:
            state.finish_reason = finish_with_calls(state.finish_reason, state.tool_calls)
        elif not produced:
            raise empty_reply(self.provider, state.finish_reason)

    # ----------------------------------------------------------------- errors

    def _map_error(self, error: Exception) -> LlmError | None:
        errors = sys.modules.get("google.genai.errors")
        p = self.provider
        if errors is not None:
            if isinstance(error, errors.APIError):
                code = error.code if isinstance(error.code, int) else 500
                headers = getattr(error.response, "headers", None)
                return error_for_status(
                    code,
                    error.message or str(error),
                    provider=p,
                    headers=headers,
                    codes=(error.status,),
                    retry_after=_retry_delay(error.details) or parse_retry_after(headers),
                )
            if isinstance(error, errors.UnknownApiResponseError):
                return LlmResponseError("the response is not valid JSON", provider=p)
        mapped = transport_error(error, provider=p)
        if mapped is not None:
            return mapped
        if type(error).__name__ == "ValidationError":  # pydantic: a response of the wrong shape
            return LlmResponseError(f"invalid response: {short(error)}", provider=p)
        if isinstance(error, TypeError | ValueError):
            return LlmRequestError(f"invalid request: {short(error)}", provider=p)
        return None


def json_response_config(output: dict[str, Any]) -> dict[str, Any]:
    """A native typed output (:attr:`CallParams.output`) as generation settings: JSON replies
    matching ``responseJsonSchema`` (the whole JSON Schema, not the OpenAPI subset)."""
    return {"response_mime_type": "application/json", "response_json_schema": output["schema"]}


def _turn(messages: list[Message]) -> int:
    """How many model turns the conversation has: what makes a made-up call id unique in it."""
    return sum(1 for m in messages if m["role"] == "assistant")


def wire_contents(turns: list[Message]) -> list[dict[str, Any]]:
    """Messages (system taken out) as Gemini contents; consecutive turns of one role merged.

    An assistant's calls are ``function_call`` parts after its text (with the id Gemini gave
    and the thought signature, if any); ``tool`` results are ``function_response`` parts of a
    user content, every result of one turn (and a user text after them) in the one content.
    A conversation that starts with the model gets a ``"(continue)"`` user turn first.
    """
    names: dict[str, str] = {}  # call id -> tool name, for results that do not say it
    out: list[dict[str, Any]] = []
    for m in turns:
        role = "model" if m["role"] == "assistant" else "user"
        parts: list[dict[str, Any]]
        if m["role"] == "tool":
            call_id = m["tool_call_id"]
            key = "error" if m.get("is_error") else "result"
            response: dict[str, Any] = {
                "name": m.get("name") or names.get(call_id, ""),
                "response": {key: m["content"]},
            }
            if not call_id.startswith(MADE_ID_PREFIX):
                response["id"] = call_id
            parts = [{"function_response": response}]
        elif "tool_calls" in m:
            parts = [{"text": m["content"]}] if m["content"] else []
            for call in m["tool_calls"]:
                names[call.id] = call.name
                parts.append(_call_part(call))
        else:
            parts = [{"text": m["content"]}]
        if out and out[-1]["role"] == role:
            previous = out[-1]["parts"]
            if parts and "text" in parts[0] and previous and "text" in previous[-1]:
                previous[-1] = {"text": previous[-1]["text"] + "\n\n" + parts[0]["text"]}
                parts = parts[1:]
            previous.extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    if out and out[0]["role"] == "model":  # as for every strictly alternating API
        out.insert(0, {"role": "user", "parts": [{"text": "(continue)"}]})
    return out


def _call_part(call: ToolCall) -> dict[str, Any]:
    function_call: dict[str, Any] = {"name": call.name, "args": dict(call.arguments)}
    if not call.id.startswith(MADE_ID_PREFIX):
        function_call["id"] = call.id
    part: dict[str, Any] = {"function_call": function_call}
    if call.signature:
        # (one that is not base64 was not Gemini's: nothing to send back)
        with contextlib.suppress(binascii.Error, ValueError):
            part["thought_signature"] = base64.b64decode(call.signature, validate=True)
    return part


def wire_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Function declarations with the JSON Schema as it is (``parameters_json_schema``)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        item: dict[str, Any] = {
            "name": tool.name,
            "parameters_json_schema": dict(tool.parameters),
        }
        if tool.description:
            item["description"] = tool.description
        out.append(item)
    return out


def wire_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    """``auto`` -> AUTO, ``required`` -> ANY, ``none`` -> NONE, a name -> ANY of that one."""
    if choice in ("auto", "required", "none"):
        return {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}
    return {"mode": "ANY", "allowed_function_names": [choice]}


def _response_id(value: object) -> str | None:
    """The provider's response id, if it gave one."""
    return value if isinstance(value, str) and value else None

"""``Gemini``: Google's Gemini API through the official ``google-genai`` SDK (``client.aio``).

Not the deprecated ``google-generativeai``. System messages become ``system_instruction``,
``assistant`` turns the ``model`` role, consecutive turns of one role are merged. The SDK gets
its transport explicitly (an ``httpx2.AsyncClient``, so it never switches to aiohttp because
aiohttp happens to be installed) and ``HttpRetryOptions(attempts=1)``: our retries are the only
ones. Finish reasons are reported in OpenAI's vocabulary (``STOP`` -> ``stop``, ``MAX_TOKENS`` ->
``length``); a blocked prompt or a ``SAFETY``-like finish is an :class:`LlmContentFilterError`.
"""

from __future__ import annotations

import sys
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
from .messages import Message, merge_consecutive, split_system

__all__ = ["Gemini"]

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
        contents = [
            {
                "role": "model" if m["role"] == "assistant" else "user",
                "parts": [{"text": m["content"]}],
            }
            for m in merge_consecutive(turns)
        ]
        config: dict[str, Any] = {}
        if system is not None:
            config["system_instruction"] = system
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
        if not text:
            raise empty_reply(self.provider, finish)
        return LlmResponse(
            text=text,
            model=getattr(response, "model_version", None) or params.model,
            usage=_usage(getattr(response, "usage_metadata", None)) or Usage(),
            finish_reason=finish,
            response_id=_response_id(getattr(response, "response_id", None)),
        )

    async def _stream(
        self, client: _Client, messages: list[Message], params: CallParams, state: StreamState
    ) -> Any:
        contents, config = self._request(messages, params)
        stream = await client.aio.models.generate_content_stream(
            model=params.model, contents=contents, config=config
        )
        produced = False
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
        if not produced:
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


def _response_id(value: object) -> str | None:
    """The provider's response id, if it gave one."""
    return value if isinstance(value, str) and value else None

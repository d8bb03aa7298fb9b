"""HTTP failures -> the error tree: the part of error mapping every SDK-backed provider shares.

Each provider's ``_map_error`` picks the status code, message and headers out of its SDK's
exception and calls :func:`error_for_status`; transport failures of any httpx flavour (httpx,
httpx2, aiohttp, plain sockets) go through :func:`transport_error`. No SDK is imported here.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ..errors import (
    LlmAuthenticationError,
    LlmConnectionError,
    LlmContextLengthError,
    LlmError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
)

__all__ = [
    "describe",
    "empty_reply",
    "error_for_status",
    "is_context_length",
    "json_field",
    "parse_retry_after",
    "short",
    "transport_error",
]

# What each vendor says when the prompt does not fit: OpenAI ("maximum context length",
# code context_length_exceeded), Anthropic ("prompt is too long: N tokens > M maximum", "input
# length and `max_tokens` exceed context limit"), Gemini ("input token count (N) exceeds the
# maximum number of tokens allowed"), vLLM and llama.cpp ("exceeds the available context size").
_CONTEXT_RE = re.compile(
    r"context[ _-]?(length|window|limit|size)"
    r"|maximum context"
    r"|prompt is too long"
    r"|input token count"
    r"|exceeds? the maximum number of tokens"
    r"|too many (input )?tokens",
    re.IGNORECASE,
)
_CONTEXT_CODES = {"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"}


def short(text: object, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (bodies can be huge)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe(error: BaseException | None) -> str:
    """``"ReadError: message"``, or just the class name when the message is empty."""
    if error is None:
        return ""
    text = short(error, 200)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def empty_reply(provider: str, finish: str | None) -> LlmResponseError:
    """A reply without text: worth retrying, unless the model ran out of tokens first."""
    return LlmResponseError(
        f"the reply is empty (finish_reason={finish!r})",
        provider=provider,
        retryable=finish != "length",
    )


def is_context_length(message: str | None, *codes: str | None) -> bool:
    """Whether an error message or a vendor error code says the prompt exceeds the context."""
    if any(c and str(c).lower() in _CONTEXT_CODES for c in codes):
        return True
    return bool(message and _CONTEXT_RE.search(message))


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000.0, 0.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    codes: tuple[str | None, ...] = (),
    retry_after: float | None = None,
) -> LlmError:
    """The error for an HTTP ``status``; ``codes`` are the vendor's error code and type."""
    text = short(message)
    if status == 401:
        return LlmAuthenticationError(text, provider=provider, status_code=status)
    if status in (402, 403):
        return LlmPermissionError(text, provider=provider, status_code=status)
    if status == 429:
        wait = retry_after if retry_after is not None else parse_retry_after(headers)
        # An exhausted quota or billing limit does not lift by waiting a few seconds.
        exhausted = bool({"insufficient_quota", "billing_hard_limit_reached"} & set(codes))
        return LlmRateLimitError(
            text,
            provider=provider,
            status_code=status,
            retry_after=wait,
            retryable=False if exhausted else None,
        )
    if status >= 500:
        return LlmServerError(text, provider=provider, status_code=status, retryable=status != 501)
    if is_context_length(message, *codes):
        return LlmContextLengthError(text, provider=provider, status_code=status)
    # 408 (request timeout) and 409 (conflict, e.g. a lock) may succeed when tried again.
    return LlmRequestError(
        text,
        provider=provider,
        status_code=status,
        retryable=True if status in (408, 409) else None,
    )


def _class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def transport_error(error: BaseException, *, provider: str) -> LlmError | None:
    """Map a raw transport failure (httpx, httpx2, aiohttp, socket, bad JSON) or ``None``.

    Classes are recognised by name along the MRO, so that both httpx and its fork httpx2 are
    handled without importing either.
    """
    names = _class_names(error)
    detail = describe(error)
    if names & {"TimeoutException", "ServerTimeoutError"}:
        return LlmTimeoutError(f"no answer within the timeout ({detail})", provider=provider)
    if isinstance(error, json.JSONDecodeError) or names & {"DecodingError", "ContentTypeError"}:
        return LlmResponseError(f"the response is not valid JSON ({detail})", provider=provider)
    if names & {
        "TransportError",
        "NetworkError",
        "ProtocolError",
        "ClientConnectionError",
        "ClientPayloadError",
        "EndOfStream",
        "BrokenResourceError",
        "SSLError",
    } or isinstance(error, ConnectionError):
        return LlmConnectionError(f"connection failed ({detail})", provider=provider)
    return None


def json_field(body: Any, *path: str) -> Any:
    """``body[path[0]][path[1]]...`` when every step is a mapping, else None."""
    for key in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(key)
    return body

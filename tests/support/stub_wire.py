"""The three vendor wire formats the stub server speaks: request reading, replies, errors.

Shapes follow the real APIs: OpenAI chat completions (JSON and SSE chunks ending in
``data: [DONE]``), Anthropic messages (JSON and the message_start ... message_stop event
sequence) and Gemini generateContent (candidates / usageMetadata, SSE without a terminator).
Everything here is pure: a request body in, bytes out. :mod:`stub_server` does the I/O.

A reply may call tools: ``tool_calls`` is a list of ``{"name", "arguments", "id"}`` (``arguments``
a dict, or text sent as it is where the vendor sends JSON text: OpenAI's ``arguments``, Anthropic's
streamed ``input_json_delta``; ``id`` optional, Gemini's ``functionCall`` has one only if given),
rendered in each vendor's shape, streamed as that vendor streams them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FORMATS",
    "Reply",
    "error_body",
    "error_headers",
    "malformed_body",
    "reply_body",
    "reply_events",
    "reply_for",
    "route",
]

FORMATS = ("openai", "anthropic", "gemini")

_GEMINI_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")

# Vendor-neutral finish reasons, and what each vendor calls them. Others pass through raw.
_FINISH = {
    "openai": {
        "stop": "stop",
        "length": "length",
        "content_filter": "content_filter",
        "tool_calls": "tool_calls",
    },
    "anthropic": {
        "stop": "end_turn",
        "length": "max_tokens",
        "content_filter": "refusal",
        "tool_calls": "tool_use",
    },
    "gemini": {
        "stop": "STOP",
        "length": "MAX_TOKENS",
        "content_filter": "SAFETY",
        "tool_calls": "STOP",
    },
}

_ERROR_NAMES = {
    # status: (openai type, anthropic type, gemini status)
    400: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    401: ("invalid_request_error", "authentication_error", "UNAUTHENTICATED"),
    403: ("permission_error", "permission_error", "PERMISSION_DENIED"),
    404: ("invalid_request_error", "not_found_error", "NOT_FOUND"),
    413: ("invalid_request_error", "request_too_large", "INVALID_ARGUMENT"),
    422: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    429: ("requests", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("server_error", "api_error", "INTERNAL"),
    502: ("server_error", "api_error", "UNAVAILABLE"),
    503: ("server_error", "api_error", "UNAVAILABLE"),
    504: ("server_error", "api_error", "DEADLINE_EXCEEDED"),
    529: ("server_error", "overloaded_error", "UNAVAILABLE"),
}

_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You do not have access to this model.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    503: "The service is temporarily unavailable.",
    529: "Overloaded",
}


def route(method: str, path: str) -> tuple[str, str | None, bool] | None:
    """``(format, model from the path, stream from the path)`` for a vendor endpoint, else None."""
    if method != "POST":
        return None
    if path.endswith("/chat/completions"):
        return "openai", None, False
    if path.endswith("/v1/messages"):
        return "anthropic", None, False
    match = _GEMINI_PATH.search(path)
    if match:
        return "gemini", match.group(1), match.group(2) == "streamGenerateContent"
    return None


def _text_of(content: Any) -> str:
    """The text of a message content: a string, a list of text blocks, or Gemini parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = content.get("parts", [content])
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _turns(fmt: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every turn of a request, system prompt included."""
    turns: list[tuple[str, str]] = []
    if fmt == "gemini":
        system = body.get("systemInstruction") or body.get("system_instruction")
        if system:
            turns.append(("system", _text_of(system)))
        for item in body.get("contents") or []:
            turns.append((str(item.get("role", "user")), _text_of(item)))
        return turns
    if fmt == "anthropic" and body.get("system"):
        turns.append(("system", _text_of(body["system"])))
    for item in body.get("messages") or []:
        if isinstance(item, dict):
            turns.append((str(item.get("role", "user")), _text_of(item.get("content"))))
    return turns


def tokens(text: str) -> int:
    """A deterministic, plausible token count (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the stub answers: text, token counts, vendor-neutral finish reason, model name."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    model: str = "stub-model"
    cache_read_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens, written to it (Anthropic reports these)
    tool_calls: tuple[dict[str, Any], ...] = ()  # {"name", "arguments", "id"?}: see the module


def _usage(fmt: str, reply: Reply, completion: int) -> dict[str, Any]:
    """The usage object of a reply, cache counts in the vendor's own fields."""
    p, r, w = reply.prompt_tokens, reply.cache_read_tokens, reply.cache_write_tokens
    if fmt == "openai":
        usage: dict[str, Any] = {
            "prompt_tokens": p,
            "completion_tokens": completion,
            "total_tokens": p + completion,
        }
        if r:
            usage["prompt_tokens_details"] = {"cached_tokens": r}
        return usage
    if fmt == "anthropic":  # input_tokens counts only what is neither read nor written
        usage = {"input_tokens": p - r - w, "output_tokens": completion}
        if r or w:
            usage["cache_read_input_tokens"] = r
            usage["cache_creation_input_tokens"] = w
        return usage
    usage = {
        "promptTokenCount": p,
        "candidatesTokenCount": completion,
        "totalTokenCount": p + completion,
    }
    if r:
        usage["cachedContentTokenCount"] = r
    return usage


def reply_for(
    fmt: str,
    body: dict[str, Any],
    model: str | None,
    text: str | None = None,
    finish_reason: str | None = None,
    cache: tuple[int, int] = (0, 0),
    tool_calls: list[dict[str, Any]] | None = None,
) -> Reply:
    """The reply to a request: ``text`` if given, else derived from the last user message
    (with ``tool_calls``: no text unless given; finish reason ``tool_calls``).

    ``cache``: (read, written) prompt tokens the reply reports as cached, at most the prompt's.
    """
    turns = _turns(fmt, body)
    if text is None and tool_calls:
        text = ""
    if text is None:
        last = next((t for role, t in reversed(turns) if role == "user"), "")
        text = f"stub reply to: {last[:40]}"
    prompt = sum(tokens(t) + 3 for _, t in turns) or 1
    read = min(cache[0], prompt)
    written = min(cache[1], prompt - read)
    return Reply(
        text=text,
        prompt_tokens=prompt,
        completion_tokens=tokens(text + json.dumps(tool_calls or [])),
        finish_reason=finish_reason or ("tool_calls" if tool_calls else "stop"),
        model=model or str(body.get("model") or "stub-model"),
        cache_read_tokens=read,
        cache_write_tokens=written,
        tool_calls=tuple(tool_calls or ()),
    )


def _call_id(fmt: str, call: dict[str, Any], i: int) -> str:
    prefix = {"openai": "call_stub", "anthropic": "toolu_stub"}.get(fmt, "stub")
    return str(call.get("id") or f"{prefix}{i}")


def _arguments_text(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _arguments_object(call: dict[str, Any]) -> Any:
    arguments = call.get("arguments", {})
    return arguments if not isinstance(arguments, str) else {}


def _openai_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": _call_id("openai", call, i),
            "type": "function",
            "function": {"name": call["name"], "arguments": _arguments_text(call)},
        }
        for i, call in enumerate(reply.tool_calls)
    ]


def _anthropic_content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    for i, call in enumerate(reply.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": _call_id("anthropic", call, i),
                "name": call["name"],
                "input": _arguments_object(call),
            }
        )
    return blocks


def _gemini_call_parts(reply: Reply) -> list[dict[str, Any]]:
    parts = []
    for call in reply.tool_calls:
        function_call: dict[str, Any] = {"name": call["name"], "args": _arguments_object(call)}
        if call.get("id"):
            function_call["id"] = call["id"]
        part: dict[str, Any] = {"functionCall": function_call}
        if call.get("signature"):  # Gemini 3's thought signature (base64), to be sent back
            part["thoughtSignature"] = call["signature"]
        parts.append(part)
    return parts


def _finish(fmt: str, reason: str) -> str:
    return _FINISH[fmt].get(reason, reason)


def _deltas(text: str) -> list[str]:
    """The text cut into one-word deltas (whitespace kept), so that a stream has several."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return parts or [""]


def reply_body(fmt: str, reply: Reply, seq: int) -> dict[str, Any]:
    """The non-streaming JSON body of a reply."""
    c = reply.completion_tokens
    if fmt == "openai":
        return {
            "id": f"chatcmpl-stub{seq}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": _openai_message(reply),
                    "logprobs": None,
                    "finish_reason": _finish(fmt, reply.finish_reason),
                }
            ],
            "usage": _usage(fmt, reply, c),
            "system_fingerprint": "fp_stub",
        }
    if fmt == "anthropic":
        return {
            "id": f"msg_stub{seq}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": _anthropic_content(reply),
            "stop_reason": _finish(fmt, reply.finish_reason),
            "stop_sequence": None,
            "usage": _usage(fmt, reply, c),
        }
    return _gemini_chunk(reply, reply.text, final=True, seq=seq, calls=True)


def _openai_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["content"] = reply.text or None
        message["tool_calls"] = _openai_calls(reply)
    return message


def _gemini_chunk(
    reply: Reply, text: str, *, final: bool, seq: int, calls: bool = False
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text or not reply.tool_calls else []
    if calls:
        parts += _gemini_call_parts(reply)
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = _finish("gemini", reply.finish_reason)
    return {
        "candidates": [candidate],
        "usageMetadata": _usage("gemini", reply, reply.completion_tokens if final else 0),
        "modelVersion": reply.model,
        "responseId": f"stub{seq}",
    }


def _sse(data: Any, event: str | None = None, sep: str = "\n\n") -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}{sep}".encode()


def _pieces(text: str) -> list[str]:
    """JSON text cut in three, so that a streamed call's arguments come in several deltas."""
    third = max(1, len(text) // 3)
    return [text[i : i + third] for i in range(0, len(text), third)] or [""]


def reply_events(fmt: str, reply: Reply, seq: int, body: dict[str, Any]) -> list[bytes]:
    """The SSE events of a streamed reply, each one ready to write as one chunk."""
    calls = reply.tool_calls
    deltas = _deltas(reply.text) if reply.text or not calls else []
    c = reply.completion_tokens
    if fmt == "openai":
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-stub{seq}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "system_fingerprint": "fp_stub",
        }
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**base, "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [chunk({"content": d}, None) for d in deltas]
        for i, call in enumerate(calls):
            head = {
                "index": i,
                "id": _call_id(fmt, call, i),
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}, None))
            for piece in _pieces(_arguments_text(call)):
                part = {"index": i, "function": {"arguments": piece}}
                events.append(chunk({"tool_calls": [part]}, None))
        events.append(chunk({}, _finish(fmt, reply.finish_reason)))
        if include_usage:
            events.append(_sse({**base, "choices": [], "usage": _usage(fmt, reply, c)}))
        events.append(_sse("[DONE]"))
        return events
    if fmt == "anthropic":
        start = {
            "id": f"msg_stub{seq}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(fmt, reply, 1),
        }
        events = [_sse({"type": "message_start", "message": start}, "message_start")]
        index = 0
        if deltas:
            events.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
            )
            events.append(_sse({"type": "ping"}, "ping"))
            for d in deltas:
                delta = {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": d},
                }
                events.append(_sse(delta, "content_block_delta"))
            events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
            index = 1
        for i, call in enumerate(calls):
            block = {
                "type": "tool_use",
                "id": _call_id(fmt, call, i),
                "name": call["name"],
                "input": {},
            }
            events.append(
                _sse(
                    {"type": "content_block_start", "index": index, "content_block": block},
                    "content_block_start",
                )
            )
            for piece in _pieces(_arguments_text(call)):
                delta = {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                events.append(_sse(delta, "content_block_delta"))
            events.append(
                _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            )
            index += 1
        stop = {"stop_reason": _finish(fmt, reply.finish_reason), "stop_sequence": None}
        events.append(
            _sse(
                {"type": "message_delta", "delta": stop, "usage": {"output_tokens": c}},
                "message_delta",
            )
        )
        events.append(_sse({"type": "message_stop"}, "message_stop"))
        return events
    # Gemini: text chunks, then (calling tools) one chunk per call; the last chunk is final.
    chunks = [_gemini_chunk(reply, d, final=False, seq=seq) for d in deltas]
    for i in range(len(calls)):
        one = Reply(**{**_fields(reply), "tool_calls": (calls[i],)})
        chunks.append(_gemini_chunk(one, "", final=False, seq=seq, calls=True))
    last = chunks[-1]
    last["candidates"][0]["finishReason"] = _finish("gemini", reply.finish_reason)
    last["usageMetadata"] = _usage("gemini", reply, reply.completion_tokens)
    return [_sse(chunk, sep="\r\n\r\n") for chunk in chunks]


def _fields(reply: Reply) -> dict[str, Any]:
    return {name: getattr(reply, name) for name in Reply.__dataclass_fields__}


def error_body(
    fmt: str,
    code: int,
    message: str | None = None,
    error_code: str | None = None,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """An error body shaped like the vendor's. ``error_code`` overrides the vendor's code/type."""
    names = _ERROR_NAMES.get(
        code, ("server_error" if code >= 500 else "invalid_request_error",) * 2 + ("UNKNOWN",)
    )
    text = message or _DEFAULT_MESSAGES.get(code, f"HTTP {code}")
    if fmt == "openai":
        return {"error": {"message": text, "type": names[0], "param": None, "code": error_code}}
    if fmt == "anthropic":
        return {"type": "error", "error": {"type": error_code or names[1], "message": text}}
    error: dict[str, Any] = {"code": code, "message": text, "status": error_code or names[2]}
    if retry_after is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        ]
    return {"error": error}


def error_headers(fmt: str, retry_after: float | None) -> dict[str, str]:
    """Retry-After headers as OpenAI and Anthropic send them (Gemini says it in the body)."""
    if retry_after is None or fmt == "gemini":
        return {}
    whole = int(retry_after) if retry_after == int(retry_after) else int(retry_after) + 1
    return {"retry-after-ms": str(int(retry_after * 1000)), "retry-after": str(whole)}


def malformed_body(fmt: str, stream: bool) -> bytes:
    """A body that is not valid JSON (or an SSE event whose data is not)."""
    if stream:
        event = "event: content_block_delta\n" if fmt == "anthropic" else ""
        return f'{event}data: {{"choices": [{{"delta": {{"content": "x"\n\n'.encode()
    return b'{"id": "broken", "choices": [{"message": {"content": "trunc'

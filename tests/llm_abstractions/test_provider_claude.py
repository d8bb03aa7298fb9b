"""``Claude`` on the real anthropic SDK against the loopback stub server."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx2
import pytest
from provider_contract import CONVERSATION, FAST, KEY, ProviderContract, collect
from stub_server import StubServer, reply, status

from coditect_core.errors import (
    LlmContentFilterError,
    LlmContextLengthError,
    LlmRateLimitError,
    LlmServerError,
)
from coditect_core.llm_abstractions import NO_RETRY, Claude, get_llm_class


class TestClaudeContract(ProviderContract):
    cls = Claude
    fmt = "anthropic"
    key_env = ("ANTHROPIC_API_KEY",)
    extra = "anthropic"
    sdk_modules = ("anthropic",)
    timeout_header = "x-stainless-timeout"


def make(stub: StubServer, **settings: Any) -> Claude:
    settings.setdefault("retry", FAST)
    return Claude(api_key=KEY, base_url=stub.url, **settings)


def test_registry_names() -> None:
    assert get_llm_class("anthropic-claude") is Claude
    assert get_llm_class("claude") is Claude


async def test_system_is_separate_and_turns_alternate(stub_server: StubServer) -> None:
    async with make(stub_server, max_tokens=64) as llm:
        await llm.generate_async(CONVERSATION)
    sent = stub_server.requests[-1]
    assert sent.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token (1.x used x-api-key)
    assert KEY in (sent.headers.get("authorization", "") + sent.headers.get("x-api-key", ""))
    assert sent.body["system"] == "Be brief.\n\nAnswer in English."
    assert sent.body["messages"] == [
        {"role": "user", "content": "first question\n\nsecond question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "last question"},
    ]
    assert sent.body["max_tokens"] == 64
    assert sent.body["model"] == Claude.default_model


async def test_max_tokens_has_a_default(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        await llm.generate_async("hi")
    assert stub_server.requests[-1].body["max_tokens"] == 4096
    assert "system" not in stub_server.requests[-1].body


async def test_temperature_is_not_sent_and_says_so(
    stub_server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="coditect_core.llm_abstractions.claude"):
        async with make(stub_server, temperature=0.2) as llm:
            await llm.generate_async("hi")
    assert "temperature" not in stub_server.requests[-1].body
    assert "temperature" in caplog.text


async def test_provider_options_pass_through(stub_server: StubServer) -> None:
    async with make(stub_server, stop_sequences=["END"], default_headers={"x-team": "blue"}) as llm:
        await llm.generate_async("hi", metadata={"user_id": "u1"}, extra_body={"temperature": 0.1})
    sent = stub_server.requests[-1]
    assert sent.body["stop_sequences"] == ["END"]
    assert sent.body["metadata"] == {"user_id": "u1"}
    assert sent.body["temperature"] == 0.1
    assert sent.headers["x-team"] == "blue"


async def test_529_overloaded_is_a_retryable_server_error(stub_server: StubServer) -> None:
    stub_server.script(status(529))
    async with make(stub_server, retry=NO_RETRY) as llm:
        with pytest.raises(LlmServerError) as caught:
            await llm.generate_async("hi")
    assert caught.value.status_code == 529
    assert caught.value.retryable


async def test_context_length_is_recognised(stub_server: StubServer) -> None:
    stub_server.script(status(400, "prompt is too long: 208310 tokens > 200000 maximum"))
    async with make(stub_server) as llm:
        with pytest.raises(LlmContextLengthError):
            await llm.generate_async("hi")
    assert stub_server.request_count == 1


async def test_refusal_is_a_content_filter_error(stub_server: StubServer) -> None:
    stub_server.script(
        reply("I can't", finish_reason="refusal"), reply("no", finish_reason="refusal")
    )
    async with make(stub_server) as llm:
        with pytest.raises(LlmContentFilterError):
            await llm.generate_async("hi")
        with pytest.raises(LlmContentFilterError):
            async for _ in llm.stream_content_async("hi"):
                pass
    assert stub_server.request_count == 2


async def test_max_tokens_stop_is_length(stub_server: StubServer) -> None:
    stub_server.script(reply("cut", finish_reason="length"))
    async with make(stub_server) as llm:
        response = await llm.generate_async("hi")
    assert response.finish_reason == "length"


def _sse_handler(events: list[tuple[str, dict[str, Any]]]) -> httpx2.MockTransport:
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(handler)


_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    },
)


async def test_error_event_inside_a_stream_is_mapped_by_type() -> None:
    events = [
        _START,
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    ]
    http = httpx2.AsyncClient(transport=_sse_handler(events))
    async with Claude(api_key=KEY, base_url="http://mock", http_client=http, retry=NO_RETRY) as llm:
        deltas: list[str] = []
        with pytest.raises(LlmServerError) as caught:
            await collect(llm.stream_content_async("hi"), deltas)
    assert deltas == ["Hi"]
    assert caught.value.status_code == 529


async def test_rate_limit_event_inside_a_stream() -> None:
    events = [
        _START,
        ("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}),
    ]
    http = httpx2.AsyncClient(transport=_sse_handler(events))
    async with Claude(api_key=KEY, base_url="http://mock", http_client=http, retry=NO_RETRY) as llm:
        with pytest.raises(LlmRateLimitError):
            async for _ in llm.stream_content_async("hi"):
                pass


async def test_stream_usage_counts_cache_reads_as_prompt() -> None:
    start = json.loads(json.dumps(_START[1]))
    start["message"]["usage"] = {
        "input_tokens": 10,
        "cache_read_input_tokens": 90,
        "output_tokens": 1,
    }
    events = [
        ("message_start", start),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 7},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    http = httpx2.AsyncClient(transport=_sse_handler(events))
    async with Claude(api_key=KEY, base_url="http://mock", http_client=http) as llm:
        stream = llm.stream_content_async("hi")
        assert [d async for d in stream] == ["Hi"]
    assert stream.response is not None
    assert stream.response.model == "claude-x"
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (100, 7)

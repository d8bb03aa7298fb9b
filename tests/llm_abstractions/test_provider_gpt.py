"""``Gpt`` and ``OpenAICompatible`` on the real openai SDK against the loopback stub server."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx2
import pytest
from provider_contract import CONVERSATION, FAST, KEY, ProviderContract, collect
from stub_server import StubServer, reply, status

from coditect_core.errors import (
    LlmConfigurationError,
    LlmContentFilterError,
    LlmContextLengthError,
    LlmRateLimitError,
    LlmServerError,
)
from coditect_core.llm_abstractions import NO_RETRY, Gpt, OpenAICompatible, get_llm_class
from coditect_core.llm_abstractions._http_errors import parse_retry_after


class TestGptContract(ProviderContract):
    cls = Gpt
    fmt = "openai"
    key_env = ("OPENAI_API_KEY",)
    extra = "openai"
    sdk_modules = ("openai",)
    timeout_header = "x-stainless-read-timeout"

    def base_url(self, stub: StubServer) -> str:
        return stub.openai_url


def make(stub: StubServer, **settings: Any) -> Gpt:
    settings.setdefault("retry", FAST)
    return Gpt(api_key=KEY, base_url=stub.openai_url, **settings)


def test_registry_names() -> None:
    assert get_llm_class("openai-gpt") is Gpt
    assert get_llm_class("gpt") is Gpt
    assert get_llm_class("openai-compatible") is OpenAICompatible


async def test_messages_are_sent_as_chat_messages(stub_server: StubServer) -> None:
    async with make(stub_server, max_tokens=50, temperature=0.3) as llm:
        await llm.generate_async(CONVERSATION)
    sent = stub_server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"] == CONVERSATION
    assert sent.body["model"] == Gpt.default_model
    assert sent.body["max_completion_tokens"] == 50
    assert "max_tokens" not in sent.body
    assert sent.body["temperature"] == 0.3


async def test_stream_asks_for_usage(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        async for _ in llm.stream_content_async("hi"):
            pass
    body = stub_server.requests[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_provider_options_pass_through(stub_server: StubServer) -> None:
    async with make(
        stub_server, seed=7, default_headers={"x-team": "blue"}, organization="org-1"
    ) as llm:
        await llm.generate_async("hi", top_p=0.5, extra_headers={"x-call": "1"})
    sent = stub_server.requests[-1]
    assert sent.body["seed"] == 7
    assert sent.body["top_p"] == 0.5
    assert sent.headers["x-team"] == "blue"
    assert sent.headers["x-call"] == "1"
    assert sent.headers["openai-organization"] == "org-1"


async def test_context_length_is_recognised(stub_server: StubServer) -> None:
    stub_server.script(
        status(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens.",
            error_code="context_length_exceeded",
        )
    )
    async with make(stub_server) as llm:
        with pytest.raises(LlmContextLengthError):
            await llm.generate_async("hi")
    assert stub_server.request_count == 1


async def test_insufficient_quota_is_not_retried(stub_server: StubServer) -> None:
    stub_server.script(
        status(429, "You exceeded your current quota.", error_code="insufficient_quota")
    )
    async with make(stub_server) as llm:
        with pytest.raises(LlmRateLimitError) as caught:
            await llm.generate_async("hi")
    assert not caught.value.retryable
    assert stub_server.request_count == 1


async def test_retry_after_in_seconds_and_as_a_date(stub_server: StubServer) -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    stub_server.script(
        status(429, headers={"retry-after": "3"}), status(429, headers={"retry-after": later})
    )
    async with make(stub_server, retry=NO_RETRY) as llm:
        with pytest.raises(LlmRateLimitError) as seconds:
            await llm.generate_async("hi")
        with pytest.raises(LlmRateLimitError) as date:
            await llm.generate_async("hi")
    assert seconds.value.retry_after == 3.0
    assert date.value.retry_after is not None
    assert 25 < date.value.retry_after <= 30


def test_parse_retry_after_prefers_milliseconds() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_content_filter_finish_is_a_content_filter_error(stub_server: StubServer) -> None:
    stub_server.script(reply("partial", finish_reason="content_filter"))
    async with make(stub_server) as llm:
        with pytest.raises(LlmContentFilterError):
            await llm.generate_async("hi")
    assert stub_server.request_count == 1


async def test_refusal_is_a_content_filter_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        return httpx2.Response(200, json=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    async with Gpt(api_key=KEY, base_url="http://mock/v1", http_client=http) as llm:
        with pytest.raises(LlmContentFilterError, match="can't help"):
            await llm.generate_async("hi")


async def test_error_event_inside_a_stream_is_mapped() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
        error = {"error": {"message": "The server had an error", "type": "server_error"}}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n"
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    async with Gpt(api_key=KEY, base_url="http://mock/v1", http_client=http, retry=NO_RETRY) as llm:
        deltas: list[str] = []
        with pytest.raises(LlmServerError):
            await collect(llm.stream_content_async("hi"), deltas)
    assert deltas == ["Hel"]


# ----------------------------------------------------------------- OpenAICompatible


def test_openai_compatible_needs_a_base_url() -> None:
    with pytest.raises(LlmConfigurationError, match="base_url"):
        OpenAICompatible(model="llama3.2")


async def test_openai_compatible_needs_no_key_and_never_sends_openais(
    stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    async with OpenAICompatible(model="llama3.2", base_url=stub_server.openai_url) as llm:
        assert await llm.generate_content_async("hi") == "stub reply to: hi"
    sent = stub_server.requests[-1]
    assert KEY not in sent.headers.get("authorization", "")
    assert sent.body["model"] == "llama3.2"


async def test_openai_compatible_sends_max_tokens(stub_server: StubServer) -> None:
    llm = OpenAICompatible(model="m", base_url=stub_server.openai_url, max_tokens=20)
    async with llm:
        await llm.generate_async("hi")
    body = stub_server.requests[-1].body
    assert body["max_tokens"] == 20
    assert "max_completion_tokens" not in body


async def test_server_refusing_stream_options_still_streams(stub_server: StubServer) -> None:
    stub_server.script(status(400, "Unrecognized request argument supplied: stream_options"))
    llm = OpenAICompatible(model="m", base_url=stub_server.openai_url, retry=NO_RETRY)
    async with llm:
        first = [d async for d in llm.stream_content_async("one two three")]
        second = [d async for d in llm.stream_content_async("four five six")]
    assert "".join(first) == "stub reply to: one two three"
    assert "".join(second) == "stub reply to: four five six"
    bodies = [r.body for r in stub_server.requests]
    assert "stream_options" in bodies[0]
    assert "stream_options" not in bodies[1]
    assert "stream_options" not in bodies[2]  # remembered for this instance

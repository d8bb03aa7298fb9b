"""``Gemini`` on the real google-genai SDK (``client.aio``) against the loopback stub server."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx2
import pytest
from provider_contract import CONVERSATION, FAST, KEY, ProviderContract
from stub_server import StubServer, reply, status

from coditect_core.errors import (
    LlmContentFilterError,
    LlmContextLengthError,
    LlmNotInstalledError,
    LlmRateLimitError,
    LlmRequestError,
)
from coditect_core.llm_abstractions import NO_RETRY, Gemini, get_llm_class


class TestGeminiContract(ProviderContract):
    cls = Gemini
    fmt = "gemini"
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    extra = "gemini"
    sdk_modules = ("google.genai", "google.genai.types")
    timeout_header = "x-server-timeout"

    def base_url(self, stub: StubServer) -> str:
        return stub.url + "/"

    async def test_sdk_missing_names_the_extra(
        self, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        google = sys.modules.get("google")
        if google is not None:  # `from google import genai` would find the attribute
            monkeypatch.delattr(google, "genai", raising=False)
        for name in self.sdk_modules:
            monkeypatch.setitem(sys.modules, name, None)
        llm = self.make(stub_server)
        with pytest.raises(LlmNotInstalledError) as caught:
            await llm.generate_async("hi")
        assert "coditect-core[gemini]" in str(caught.value)
        assert stub_server.request_count == 0


def make(stub: StubServer, **settings: Any) -> Gemini:
    settings.setdefault("retry", FAST)
    return Gemini(api_key=KEY, base_url=stub.url + "/", **settings)


def test_registry_names() -> None:
    assert get_llm_class("google-gemini") is Gemini
    assert get_llm_class("gemini") is Gemini


async def test_model_role_and_system_instruction(stub_server: StubServer) -> None:
    async with make(stub_server, max_tokens=64, temperature=0.2) as llm:
        await llm.generate_async(CONVERSATION)
    sent = stub_server.requests[-1]
    assert sent.path.endswith(f"/models/{Gemini.default_model}:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief.\n\nAnswer in English."}]
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "first question\n\nsecond question"}]},
        {"role": "model", "parts": [{"text": "an answer"}]},
        {"role": "user", "parts": [{"text": "last question"}]},
    ]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.2}


async def test_stream_uses_sse_endpoint(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        async for _ in llm.stream_content_async("hi"):
            pass
    sent = stub_server.requests[-1]
    assert sent.path.endswith(":streamGenerateContent")
    assert sent.query == {"alt": "sse"}


async def test_provider_options_pass_through(stub_server: StubServer) -> None:
    async with make(stub_server, top_k=3, headers={"x-team": "blue"}) as llm:
        await llm.generate_async("hi", stop_sequences=["END"])
    sent = stub_server.requests[-1]
    assert sent.body["generationConfig"]["topK"] == 3
    assert sent.body["generationConfig"]["stopSequences"] == ["END"]
    assert sent.headers["x-team"] == "blue"


async def test_api_version_client_option(stub_server: StubServer) -> None:
    async with make(stub_server, api_version="v1beta") as llm:
        await llm.generate_async("hi")
    assert stub_server.requests[-1].path.startswith("/v1beta/models/")


async def test_bad_generation_setting_is_a_request_error(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        with pytest.raises(LlmRequestError, match="top_k"):
            await llm.generate_async("hi", top_k="many")
    assert stub_server.request_count == 0


async def test_retry_info_gives_retry_after(stub_server: StubServer) -> None:
    stub_server.script(status(429, retry_after=1.5))  # Gemini says it in RetryInfo, not a header
    async with make(stub_server, retry=NO_RETRY) as llm:
        with pytest.raises(LlmRateLimitError) as caught:
            await llm.generate_async("hi")
    assert caught.value.retry_after == 1.5


async def test_context_length_is_recognised(stub_server: StubServer) -> None:
    stub_server.script(
        status(
            400,
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
        )
    )
    async with make(stub_server) as llm:
        with pytest.raises(LlmContextLengthError):
            await llm.generate_async("hi")


async def test_safety_finish_is_a_content_filter_error(stub_server: StubServer) -> None:
    stub_server.script(reply("x", finish_reason="SAFETY"), reply("y", finish_reason="SAFETY"))
    async with make(stub_server) as llm:
        with pytest.raises(LlmContentFilterError, match="SAFETY"):
            await llm.generate_async("hi")
        with pytest.raises(LlmContentFilterError):
            async for _ in llm.stream_content_async("hi"):
                pass
    assert stub_server.request_count == 2


async def test_max_tokens_finish_is_length(stub_server: StubServer) -> None:
    stub_server.script(reply("cut", finish_reason="MAX_TOKENS"))
    async with make(stub_server) as llm:
        response = await llm.generate_async("hi")
    assert response.finish_reason == "length"


async def test_blocked_prompt_is_a_content_filter_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        }
        return httpx2.Response(
            200, text=json.dumps(body), headers={"content-type": "application/json"}
        )

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    async with Gemini(api_key=KEY, base_url="http://mock/", http_client=http) as llm:
        with pytest.raises(LlmContentFilterError, match="prompt was blocked"):
            await llm.generate_async("hi")


async def test_thoughts_are_not_text() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        parts = [{"text": "thinking...", "thought": True}, {"text": "the answer"}]
        body = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 28,
            },
        }
        return httpx2.Response(200, json=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    async with Gemini(api_key=KEY, base_url="http://mock/", http_client=http) as llm:
        response = await llm.generate_async("hi")
    assert response.text == "the answer"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 23)
    assert response.usage.total_tokens == 28

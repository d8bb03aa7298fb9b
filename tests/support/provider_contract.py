"""The behaviour every SDK-backed provider shares, tested once against the stub server.

Each ``tests/test_provider_*.py`` subclasses :class:`ProviderContract` (as ``Test...``), says which
class, wire format, key variables and SDK it has, and adds its vendor-specific cases. Every test
runs the real SDK against the loopback stub (``stub_server`` fixture).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, ClassVar

import pytest
from stub_server import StubServer, hang, malformed, reply, reset, status, truncate
from stub_wire import reply_for

from coditect_core.errors import (
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmConnectionError,
    LlmContextLengthError,
    LlmNotInstalledError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
)
from coditect_core.llm_abstractions import NO_RETRY, BaseLlm, RetryPolicy, Usage
from coditect_core.llm_abstractions.pricing import PriceBook, PricedLlm, default_price_source

KEY = "sk-test-SECRET-0123456789"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=1.0, deadline=30.0)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "system", "content": "Answer in English."},
    {"role": "user", "content": "first question"},
    {"role": "user", "content": "second question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": "last question"},
]


async def collect(stream: Any, into: list[str]) -> None:
    """Append every delta of ``stream`` to ``into`` (so that a test sees those before a failure)."""
    async for delta in stream:
        into.append(delta)


class ProviderContract:
    """Cases every provider passes. Subclasses fill in the class variables."""

    cls: ClassVar[type[BaseLlm]]
    fmt: ClassVar[str]  # the stub's wire format: openai, anthropic, gemini
    key_env: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]  # the pip extra named by LlmNotInstalledError
    sdk_modules: ClassVar[tuple[str, ...]]  # set to None in sys.modules to hide the SDK
    timeout_header: ClassVar[str]  # the header in which the SDK tells the server its timeout

    def base_url(self, stub: StubServer) -> str:
        return stub.url

    def make(self, stub: StubServer, **settings: Any) -> BaseLlm:
        settings.setdefault("retry", FAST)
        return self.cls(api_key=KEY, base_url=self.base_url(stub), **settings)

    # ----------------------------------------------------------------- replies

    @pytest.mark.parametrize("stream", [False, True])
    async def test_cached_prompt_tokens_are_priced_at_the_cache_price(
        self, stub_server: StubServer, stream: bool
    ) -> None:
        """The SDK's own cache fields reach ``Usage``, and a call is priced with genai-prices'
        cached-input prices (the provider's default model, which genai-prices knows)."""
        stub_server.cache_read_tokens = 5
        stub_server.cache_write_tokens = 2  # only Anthropic reports cache writes
        book = PriceBook()
        async with PricedLlm(self.make(stub_server), book, agent="a") as llm:
            if stream:
                deltas = llm.stream_content_async(CONVERSATION)
                assert [d async for d in deltas]
                usage = deltas.usage
                assert usage is not None
                cost = book.cost("a", llm.provider, self.cls.default_model, usage)
            else:
                response = await llm.generate_async(CONVERSATION)
                usage, cost = response.usage, response.cost_usd
        assert usage.cache_read_tokens == 5
        assert usage.cache_write_tokens == (2 if self.fmt == "anthropic" else 0)
        assert usage.prompt_tokens > 7
        assert usage.completion_tokens > 0
        model = self.cls.default_model
        source = default_price_source()
        full = source.cost(self.cls.provider, model, Usage(usage.prompt_tokens, 0))
        fresh = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        assert full is not None
        assert cost is not None
        assert cost == pytest.approx(source.cost(self.cls.provider, model, usage))
        # the cached tokens were not priced as fresh input: reads cost less, writes more
        out = source.cost(self.cls.provider, model, Usage(0, usage.completion_tokens))
        fresh_cost = source.cost(self.cls.provider, model, Usage(fresh, 0))
        assert out is not None
        assert fresh_cost is not None
        assert cost != pytest.approx(full + out)
        assert cost > fresh_cost + out

    async def test_plain_call(self, stub_server: StubServer) -> None:
        async with self.make(stub_server) as llm:
            text = await llm.generate_content_async("hello there")
            response = await llm.generate_async("hello again")
        assert text == "stub reply to: hello there"
        assert response.text == "stub reply to: hello again"
        assert response.finish_reason == "stop"
        assert response.attempts == 1
        assert response.provider == self.cls.provider
        assert stub_server.reply_count == 2

    async def test_usage_is_the_servers_count(self, stub_server: StubServer) -> None:
        async with self.make(stub_server) as llm:
            response = await llm.generate_async(CONVERSATION)
        sent = stub_server.requests[-1]
        expected = reply_for(self.fmt, sent.body, None)
        assert response.usage.prompt_tokens == expected.prompt_tokens
        assert response.usage.completion_tokens == expected.completion_tokens
        assert response.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens

    async def test_response_id_is_the_providers(self, stub_server: StubServer) -> None:
        """The provider's id of the response (what the call journal keeps with the answer)."""
        async with self.make(stub_server) as llm:
            first = await llm.generate_async("one")
            second = await llm.generate_async("two")
        assert isinstance(first.response_id, str)
        assert "stub" in first.response_id  # the stub's ids: chatcmpl-stubN, msg_stubN, stubN
        assert second.response_id != first.response_id

    async def test_stream_yields_several_deltas_then_usage(self, stub_server: StubServer) -> None:
        async with self.make(stub_server) as llm:
            stream = llm.stream_content_async("tell me a short story please")
            deltas = [d async for d in stream]
        assert len(deltas) > 3
        assert "".join(deltas) == "stub reply to: tell me a short story please"
        assert stream.response is not None
        assert stream.response.text == "".join(deltas)
        assert stream.response.finish_reason == "stop"
        expected = reply_for(self.fmt, stub_server.requests[-1].body, None)
        assert stream.usage is not None
        assert stream.usage.prompt_tokens == expected.prompt_tokens
        assert stream.usage.completion_tokens == expected.completion_tokens

    async def test_connections_are_reused(self, stub_server: StubServer) -> None:
        async with self.make(stub_server) as llm:
            for i in range(5):
                await llm.generate_content_async(f"call {i}")
        assert stub_server.reply_count == 5
        assert stub_server.connections_opened == 1

    def test_sync_call(self, stub_server: StubServer) -> None:
        llm = self.make(stub_server)
        assert llm.generate_content("from sync code") == "stub reply to: from sync code"

    # ----------------------------------------------------------------- failures

    async def test_401_is_an_authentication_error_not_retried(
        self, stub_server: StubServer
    ) -> None:
        stub_server.script(status(401))
        async with self.make(stub_server) as llm:
            with pytest.raises(LlmAuthenticationError) as caught:
                await llm.generate_async("hi")
        assert caught.value.status_code == 401
        assert caught.value.provider == self.cls.provider
        assert not caught.value.retryable
        assert stub_server.request_count == 1

    async def test_403_is_a_permission_error(self, stub_server: StubServer) -> None:
        stub_server.script(status(403))
        async with self.make(stub_server) as llm:
            with pytest.raises(LlmPermissionError):
                await llm.generate_async("hi")

    async def test_404_is_a_request_error(self, stub_server: StubServer) -> None:
        stub_server.script(status(404))
        async with self.make(stub_server) as llm:
            with pytest.raises(LlmRequestError) as caught:
                await llm.generate_async("hi")
        assert caught.value.status_code == 404
        assert not isinstance(caught.value, LlmContextLengthError)

    async def test_429_retry_after_is_parsed(self, stub_server: StubServer) -> None:
        stub_server.script(status(429, retry_after=0.25))
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmRateLimitError) as caught:
                await llm.generate_async("hi")
        assert caught.value.retry_after == pytest.approx(0.25)
        assert caught.value.retryable

    async def test_429_then_success_takes_two_attempts(self, stub_server: StubServer) -> None:
        stub_server.script(status(429, retry_after=0.05))
        async with self.make(stub_server) as llm:
            response = await llm.generate_async("hi")
        assert response.text == "stub reply to: hi"
        assert response.attempts == 2
        assert stub_server.request_count == 2
        # The SDK's own retries are off: every attempt is a first try for it.
        assert {r.headers.get("x-stainless-retry-count", "0") for r in stub_server.requests} == {
            "0"
        }

    async def test_500_is_retried_then_raised(self, stub_server: StubServer) -> None:
        stub_server.script(status(500), status(500), status(500))
        async with self.make(stub_server) as llm:
            with pytest.raises(LlmServerError) as caught:
                await llm.generate_async("hi")
        assert caught.value.status_code == 500
        assert stub_server.request_count == FAST.max_attempts

    async def test_hang_past_the_timeout_is_a_timeout(self, stub_server: StubServer) -> None:
        stub_server.script(hang(10))
        async with self.make(stub_server, retry=NO_RETRY, timeout=0.3) as llm:
            with pytest.raises(LlmTimeoutError):
                await llm.generate_async("hi")
        assert stub_server.request_count == 1

    async def test_timeout_reaches_the_sdk(self, stub_server: StubServer) -> None:
        async with self.make(stub_server, timeout=42) as llm:
            await llm.generate_async("hi")
            await llm.generate_async("hi", timeout=7)
        first, second = (r.headers.get(self.timeout_header) for r in stub_server.requests)
        assert first is not None
        assert float(first) == 42
        assert second is not None
        assert float(second) == 7

    async def test_malformed_body_is_a_response_error(self, stub_server: StubServer) -> None:
        stub_server.script(malformed())
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmResponseError):
                await llm.generate_async("hi")

    async def test_malformed_stream_is_a_response_error(self, stub_server: StubServer) -> None:
        stub_server.script(malformed())
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmResponseError):
                async for _ in llm.stream_content_async("hi"):
                    pass

    async def test_connection_reset_is_a_connection_error(self, stub_server: StubServer) -> None:
        stub_server.script(reset())
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmConnectionError):
                await llm.generate_async("hi")

    async def test_reset_then_success_is_retried(self, stub_server: StubServer) -> None:
        stub_server.script(reset(), truncate())
        async with self.make(stub_server) as llm:
            response = await llm.generate_async("hi")
        assert response.attempts == 3
        assert response.text == "stub reply to: hi"

    async def test_stream_cut_short_is_an_error(self, stub_server: StubServer) -> None:
        stub_server.script(truncate(clean=True), truncate())
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmResponseError, match="stream ended"):
                async for _ in llm.stream_content_async("a fairly long prompt for the stub"):
                    pass
            with pytest.raises((LlmConnectionError, LlmResponseError)):
                async for _ in llm.stream_content_async("a fairly long prompt for the stub"):
                    pass

    async def test_empty_reply_is_a_response_error(self, stub_server: StubServer) -> None:
        stub_server.script(reply(""), reply(""))
        async with self.make(stub_server, retry=NO_RETRY) as llm:
            with pytest.raises(LlmResponseError, match="empty"):
                await llm.generate_async("hi")
            with pytest.raises(LlmResponseError, match="empty"):
                async for _ in llm.stream_content_async("hi"):
                    pass

    # ----------------------------------------------------------------- configuration

    async def test_missing_key_names_the_variable_and_sends_nothing(
        self, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for var in self.key_env:
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(LlmConfigurationError) as caught:
            self.cls(base_url=self.base_url(stub_server))
        for var in self.key_env:
            assert var in str(caught.value)
        assert stub_server.request_count == 0

    async def test_key_from_the_environment(
        self, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for var in self.key_env:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv(self.key_env[-1], KEY)
        async with self.cls(base_url=self.base_url(stub_server)) as llm:
            await llm.generate_async("hi")
        assert KEY in " ".join(stub_server.requests[-1].headers.values())

    async def test_key_never_in_repr_or_error_text(self, stub_server: StubServer) -> None:
        stub_server.script(status(401, f"Incorrect API key provided: {KEY}."))
        llm = self.make(stub_server)
        assert KEY not in repr(llm)
        with pytest.raises(LlmAuthenticationError) as caught:
            await llm.generate_async("hi")
        await llm.aclose()
        error = caught.value
        assert "Incorrect API key" in str(error)
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in "".join(traceback.format_exception(error))

    async def test_unknown_option_is_a_request_error_before_any_request(
        self, stub_server: StubServer
    ) -> None:
        async with self.make(stub_server) as llm:
            with pytest.raises(LlmRequestError):
                await llm.generate_async("hi", no_such_option=1)
        assert stub_server.request_count == 0

    async def test_sdk_missing_names_the_extra(
        self, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in self.sdk_modules:
            monkeypatch.setitem(sys.modules, name, None)
        llm = self.make(stub_server)
        with pytest.raises(LlmNotInstalledError) as caught:
            await llm.generate_async("hi")
        assert f"coditect-core[{self.extra}]" in str(caught.value)
        assert stub_server.request_count == 0

"""The shared call pipeline of ``BaseLlm``, on ``FakeLlm`` and on a small provider defined here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

import pytest

from coditect_core.errors import (
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmError,
    LlmNotInstalledError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
)
from coditect_core.llm_abstractions import (
    NO_RETRY,
    BaseLlm,
    CallParams,
    FakeLlm,
    LlmResponse,
    Message,
    RetryPolicy,
    StreamState,
    Usage,
)

KEY = "sk-probe-secret-8c1d2e3f4a5b"
FAST = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.0)

# A script step: text to answer, an exception to raise, or seconds to hang before answering.
Step = str | BaseException | float


class SdkError(Exception):
    """Stands for an exception type of a vendor SDK."""


class OpaqueError(Exception):
    """An SDK exception whose text comes from an attribute, not from ``args``."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class Probe(BaseLlm):
    """A provider whose calls, streams, clients and errors the test scripts and observes."""

    provider = "probe"
    default_model = "probe-1"
    api_key_env: ClassVar[tuple[str, ...]] = ("CODITECT_TEST_PROBE_KEY",)
    client_options: ClassVar[frozenset[str]] = frozenset({"pool_size"})

    def __init__(
        self,
        script: Iterable[Step] = (),
        streams: Iterable[Iterable[Step]] = (),
        **settings: Any,
    ) -> None:
        settings.setdefault("api_key", KEY)
        settings.setdefault("retry", FAST)
        super().__init__(**settings)
        self.script = list(script)
        self.streams = [list(s) for s in streams]
        self.created = 0
        self.closed: list[int] = []
        self.params: list[CallParams] = []
        self.streams_started = 0
        self.streams_closed = 0

    def _create_client(self) -> Any:
        self.created += 1
        return {"client": self.created}

    async def _close_client(self, client: Any) -> None:
        self.closed.append(client["client"])

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        self.params.append(params)
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = "slow ok"
        if isinstance(step, BaseException):
            raise step
        return LlmResponse(text=step, model=params.model, usage=Usage(3, 2), finish_reason="stop")

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        self.streams_started += 1
        script = self.streams.pop(0) if self.streams else ["o", "k"]
        try:
            for step in script:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step
            state.usage, state.finish_reason, state.model = Usage(5, 7), "stop", "probe-1-0401"
        finally:
            self.streams_closed += 1

    def _map_error(self, error: Exception) -> LlmError | None:
        if isinstance(error, SdkError):
            return LlmRateLimitError(f"sdk says: {error}", retry_after=0)
        if isinstance(error, OpaqueError):
            return LlmAuthenticationError("the key was refused", status_code=401)
        return None


def assert_no_key(error: BaseException) -> None:
    """The key is nowhere in the error, its repr, or the whole printed traceback chain."""
    text = "".join(traceback.format_exception(error))
    assert KEY not in text
    assert KEY not in repr(error)
    assert KEY not in str(error.args)


async def drain(stream: AsyncIterator[str], into: list[str]) -> None:
    """Collect a stream's deltas into ``into`` (so a test can see them after it fails)."""
    async for delta in stream:
        into.append(delta)


# ----------------------------------------------------------------- one call


async def test_response_fields() -> None:
    llm = Probe(["hello", 0.05])  # the second call's provider takes 0.05 s
    before = time.monotonic()
    response = await llm.generate_async("hi")
    elapsed = time.monotonic() - before
    assert (response.text, response.model, response.provider) == ("hello", "probe-1", "probe")
    assert response.usage == Usage(3, 2, 5)
    assert (response.finish_reason, response.attempts) == ("stop", 1)
    assert 0 < response.latency_s <= elapsed  # seconds, measured around this call
    before = time.monotonic()
    slow = await llm.generate_async("hi")
    elapsed = time.monotonic() - before
    assert slow.text == "slow ok"
    # The provider's 0.05 s is in it (asyncio may wake a clock tick early), nothing older.
    assert 0.04 <= slow.latency_s <= elapsed
    assert json.loads(json.dumps(response.to_dict())) == {
        "text": "hello",
        "model": "probe-1",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "finish_reason": "stop",
        "attempts": 1,
        "latency_s": response.latency_s,
        "provider": "probe",
        "cost_usd": None,  # not priced: no pricing step wraps this LLM
        "response_id": None,  # the probe gives none
        "cached": False,  # from the provider, not the call journal
    }
    assert await Probe(["plain"]).generate_content_async("hi") == "plain"


async def test_retries_are_reported_in_attempts() -> None:
    llm = FakeLlm([LlmServerError("500"), LlmRateLimitError("429", retry_after=0), "third time"])
    response = await llm.generate_async("hi")
    assert response.text == "third time"
    assert response.attempts == 3
    assert len(llm.calls) == 3


async def test_non_retryable_error_is_raised_at_once() -> None:
    llm = FakeLlm([LlmAuthenticationError("401"), "never"])
    with pytest.raises(LlmAuthenticationError) as info:
        await llm.generate_async("hi")
    assert len(llm.calls) == 1
    assert info.value.provider == "fake"  # filled in for errors raised without one
    assert info.value.attempts == 1


async def test_exhausted_retries_raise_the_last_error_with_attempts() -> None:
    llm = FakeLlm([LlmServerError(f"500 #{i}") for i in range(10)], retry=FAST)
    with pytest.raises(LlmServerError, match="500 #3") as info:
        await llm.generate_async("hi")
    assert info.value.attempts == 4


async def test_timeout_becomes_llm_timeout_error() -> None:
    llm = Probe([5.0], timeout=0.05, retry=NO_RETRY)
    started = time.monotonic()
    with pytest.raises(LlmTimeoutError, match=r"within 0.05s") as info:
        await llm.generate_async("hi")
    assert time.monotonic() - started < 4.0
    assert info.value.provider == "probe"
    assert info.value.retryable


async def test_timeout_is_per_attempt_and_retried() -> None:
    llm = Probe([5.0, "fast"], timeout=0.05)
    response = await llm.generate_async("hi")
    assert (response.text, response.attempts) == ("fast", 2)


async def test_deadline_shortens_an_attempt_timeout() -> None:
    llm = Probe(
        [5.0, 5.0],
        timeout=10.0,
        retry=RetryPolicy(max_attempts=3, initial_delay=0.0, deadline=0.1),
    )
    started = time.monotonic()
    with pytest.raises(LlmTimeoutError):
        await llm.generate_async("hi")
    assert time.monotonic() - started < 4.0


async def test_deadline_stops_retries_from_starting() -> None:
    # The server asks for 0.5 s; waiting would pass the 0.2 s deadline, so no retry starts.
    failure = LlmRateLimitError("slow down", provider="probe", retry_after=0.5)
    llm = Probe(
        [failure, "never"],
        retry=RetryPolicy(max_attempts=5, initial_delay=0.0, deadline=0.2),
    )
    with pytest.raises(LlmRateLimitError):
        await llm.generate_async("hi")
    assert llm.script == ["never"]


async def test_builtin_timeout_error_from_the_provider_is_mapped() -> None:
    llm = Probe([TimeoutError("read timed out")], retry=NO_RETRY)
    with pytest.raises(LlmTimeoutError):
        await llm.generate_async("hi")


async def test_sdk_error_goes_through_map_error() -> None:
    llm = Probe([SdkError("slow down"), "after"])
    response = await llm.generate_async("hi")
    assert (response.text, response.attempts) == ("after", 2)

    llm = Probe([SdkError("slow down")], retry=NO_RETRY)
    with pytest.raises(LlmRateLimitError, match="sdk says: slow down") as info:
        await llm.generate_async("hi")
    assert info.value.provider == "probe"
    assert isinstance(info.value.__cause__, SdkError)


@pytest.mark.parametrize("raw", [ValueError("boom"), KeyError("text"), RuntimeError("x")])
async def test_unknown_exceptions_are_mapped_never_leaked(raw: Exception) -> None:
    llm = Probe([raw, "never"])
    with pytest.raises(LlmError) as info:
        await llm.generate_async("hi")
    assert type(info.value) is LlmResponseError
    assert not info.value.retryable
    assert type(raw).__name__ in str(info.value)
    assert info.value.__cause__ is raw
    assert len(llm.params) == 1


async def test_key_is_redacted_from_mapped_error_text_and_cause() -> None:
    llm = Probe([ValueError(f"bad request with key={KEY}")], retry=NO_RETRY)
    with pytest.raises(LlmResponseError) as info:
        await llm.generate_async("hi")
    assert "key=***" in str(info.value)
    assert_no_key(info.value)


async def test_key_is_redacted_from_llm_errors_raised_by_the_provider() -> None:
    llm = Probe([LlmAuthenticationError(f"Incorrect API key provided: {KEY}", status_code=401)])
    with pytest.raises(LlmAuthenticationError) as info:
        await llm.generate_async("hi")
    assert "Incorrect API key provided: ***" in str(info.value)
    assert_no_key(info.value)


async def test_retry_log_lines_do_not_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    llm = Probe([LlmServerError(f"upstream echoed {KEY}"), "ok"])
    with caplog.at_level(logging.DEBUG, logger="coditect_core"):
        assert (await llm.generate_async("hi")).attempts == 2
    assert "retrying" in caplog.text
    assert "upstream echoed ***" in caplog.text
    assert KEY not in caplog.text


async def test_cause_that_would_show_the_key_is_dropped() -> None:
    llm = Probe([OpaqueError(f"refused {KEY}")], retry=NO_RETRY)
    with pytest.raises(LlmAuthenticationError) as info:
        await llm.generate_async("hi")
    assert info.value.__cause__ is None
    assert_no_key(info.value)


async def test_cancellation_is_not_mapped() -> None:
    llm = Probe([5.0])
    task = asyncio.create_task(llm.generate_async("hi"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_bad_messages_fail_before_any_client_is_made() -> None:
    llm = Probe()
    with pytest.raises(LlmRequestError, match=r"messages\[0\]"):
        await llm.generate_async([{"role": "robot", "content": "x"}])
    with pytest.raises(LlmRequestError):
        llm.stream_content_async([])
    assert llm.created == 0
    assert llm.params == []


async def test_call_kwargs_override_settings_and_pass_options_through() -> None:
    llm = Probe(
        model="m-default", max_tokens=10, temperature=0.5, timeout=9.0, top_p=0.9, pool_size=4
    )
    assert llm.client_settings == {"pool_size": 4}
    assert llm.provider_options == {"top_p": 0.9}
    await llm.generate_async("hi")
    await llm.generate_async("hi", model="m-call", max_tokens=20, temperature=0.0, seed=1)
    first, second = llm.params
    assert (first.model, first.max_tokens, first.temperature, first.timeout) == (
        "m-default",
        10,
        0.5,
        9.0,
    )
    assert first.options == {"top_p": 0.9}
    assert (second.model, second.max_tokens, second.temperature) == ("m-call", 20, 0.0)
    assert second.options == {"top_p": 0.9, "seed": 1}


async def test_client_creation_errors_are_mapped() -> None:
    class Missing(Probe):
        def _create_client(self) -> Any:
            raise LlmNotInstalledError("pip install 'coditect-core[probe]'")

    with pytest.raises(LlmNotInstalledError) as info:
        await Missing().generate_async("hi")
    assert info.value.provider == "probe"


def test_no_model_and_no_default_is_a_configuration_error() -> None:
    class NoDefault(Probe):
        default_model = None

    with pytest.raises(LlmConfigurationError, match="no model"):
        NoDefault()


def test_repr_shows_model_and_base_url_but_never_the_key() -> None:
    llm = Probe(base_url=f"https://proxy.test/v1?key={KEY}")
    assert repr(llm) == "Probe(model='probe-1', base_url='https://proxy.test/v1?key=***')"
    assert repr(Probe()) == "Probe(model='probe-1')"


# ----------------------------------------------------------------- streaming


async def test_stream_yields_deltas_then_response_and_usage() -> None:
    llm = Probe(streams=[["Hel", "", "lo", " world"]])
    stream = llm.stream_content_async("hi")
    assert stream.response is None
    assert stream.usage is None
    deltas = [d async for d in stream]
    assert deltas == ["Hel", "lo", " world"]  # empty deltas are not passed on
    assert stream.response is not None
    assert stream.response.text == "Hello world"
    assert stream.response.model == "probe-1-0401"
    assert stream.response.finish_reason == "stop"
    assert stream.response.attempts == 1
    assert stream.usage == Usage(5, 7)
    assert llm.streams_closed == 1


async def test_a_stream_without_token_counts_has_unknown_usage_not_zero() -> None:
    class Uncounted(FakeLlm):
        async def _stream(
            self, client: Any, messages: list[Message], params: CallParams, state: StreamState
        ) -> AsyncIterator[str]:
            state.finish_reason = "stop"
            yield "no counts"

    stream = Uncounted().stream_content_async("hi")
    assert [d async for d in stream] == ["no counts"]
    assert stream.response is not None
    assert stream.response.text == "no counts"
    assert stream.usage is None
    assert stream.response.usage == Usage(0, 0)  # the documented placeholder


async def test_prepare_makes_the_client_once_before_the_first_call() -> None:
    made: list[object] = []

    class Counting(FakeLlm):
        def _create_client(self) -> Any:
            made.append(object())
            return made[-1]

    llm = Counting()
    llm.prepare()
    assert len(made) == 1
    assert await llm.generate_content_async("hi") == "fake reply to: hi"
    llm.prepare()
    assert len(made) == 1  # the call and a second prepare() reuse it


def test_prepare_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        FakeLlm().prepare()


async def test_fake_stream_is_chunked() -> None:
    llm = FakeLlm(["abcdefghij"], chunk_size=3)
    stream = llm.stream_content_async("hi")
    assert [d async for d in stream] == ["abc", "def", "ghi", "j"]
    assert stream.usage == Usage(1, 1)


async def test_default_stream_is_the_whole_reply_in_one_delta() -> None:
    class NoStream(BaseLlm):
        provider = "nostream"
        default_model = "n"

        async def _generate(
            self, client: Any, messages: list[Message], params: CallParams
        ) -> LlmResponse:
            return LlmResponse("whole reply", params.model, Usage(2, 2), "length")

    stream = NoStream().stream_content_async("hi")
    assert [d async for d in stream] == ["whole reply"]
    assert stream.response is not None
    assert (stream.response.finish_reason, stream.usage) == ("length", Usage(2, 2))


async def test_stream_failure_before_the_first_delta_is_retried() -> None:
    llm = Probe(streams=[[LlmServerError("503")], [SdkError("429")], ["a", "b"]])
    stream = llm.stream_content_async("hi")
    assert [d async for d in stream] == ["a", "b"]
    assert stream.response is not None
    assert stream.response.attempts == 3
    assert llm.streams_started == 3
    assert llm.streams_closed == 3


async def test_stream_failure_after_the_first_delta_is_raised_not_retried() -> None:
    llm = Probe(streams=[["a", LlmServerError("connection reset mid-stream")], ["never"]])
    got: list[str] = []
    with pytest.raises(LlmServerError, match="mid-stream") as info:
        await drain(llm.stream_content_async("hi"), got)
    assert got == ["a"]
    assert llm.streams_started == 1
    assert info.value.provider == "probe"


async def test_stream_unknown_error_mid_stream_is_mapped_and_redacted() -> None:
    llm = Probe(streams=[["a", ValueError(f"broken chunk near {KEY}")]])
    with pytest.raises(LlmResponseError) as info:
        await drain(llm.stream_content_async("hi"), [])
    assert_no_key(info.value)


async def test_stream_waits_for_each_delta_at_most_timeout() -> None:
    llm = Probe(streams=[["a", 5.0, "b"]], timeout=0.05, retry=NO_RETRY)
    got: list[str] = []
    with pytest.raises(LlmTimeoutError):
        await drain(llm.stream_content_async("hi"), got)
    assert got == ["a"]
    assert llm.streams_closed == 1


async def test_stream_closed_early_closes_the_provider_stream() -> None:
    llm = Probe(streams=[["a", "b", "c"]])
    async with llm.stream_content_async("hi") as stream:
        async for delta in stream:
            assert delta == "a"
            break
    assert llm.streams_closed == 1
    assert stream.response is None

    llm = Probe(streams=[["a", "b", "c"]])
    stream = llm.stream_content_async("hi")
    assert await stream.__anext__() == "a"
    await stream.aclose()
    assert llm.streams_closed == 1


async def test_stream_that_is_never_iterated_can_be_closed() -> None:
    llm = Probe()
    await llm.stream_content_async("hi").aclose()
    assert llm.streams_started == 0


# ----------------------------------------------------------------- sync wrapper, clients, closing


def test_sync_call_outside_a_loop() -> None:
    llm = FakeLlm(["sync reply"])
    assert llm.generate_content("hi") == "sync reply"
    assert llm.closed == 1  # the client of the call's own loop is closed after it
    assert llm.generate_content("again").startswith("fake reply to: again")
    assert llm.closed == 2


async def test_sync_call_inside_a_loop_is_a_clear_error() -> None:
    llm = FakeLlm(["never"])
    with pytest.raises(LlmConfigurationError, match="generate_content_async") as info:
        llm.generate_content("hi")
    assert "running event loop" in str(info.value)
    assert llm.calls == []


async def test_async_with_closes_the_client() -> None:
    async with Probe() as llm:
        await llm.generate_async("hi")
        await llm.generate_async("hi")
        assert (llm.created, llm.closed) == (1, [])  # one client for every call on the loop
    assert llm.closed == [1]
    await llm.generate_async("hi")  # still usable: a new client is made
    assert llm.created == 2
    await llm.aclose()
    await llm.aclose()  # closing twice is harmless
    assert llm.closed == [1, 2]


async def test_close_errors_are_swallowed() -> None:
    class BadClose(Probe):
        async def _close_client(self, client: Any) -> None:
            raise OSError("socket already gone")

    llm = BadClose()
    await llm.generate_async("hi")
    await llm.aclose()
    assert llm._client is None


def test_a_new_client_per_event_loop() -> None:
    llm = Probe()

    async def two_calls() -> None:
        await llm.generate_async("hi")
        await llm.generate_async("hi")

    asyncio.run(two_calls())
    assert llm.created == 1
    asyncio.run(two_calls())
    assert llm.created == 2  # the first loop's client cannot serve the second loop

    async def close() -> None:
        await llm.aclose()

    asyncio.run(close())
    assert llm.closed == []  # a client of another loop is dropped, not closed from this one
    asyncio.run(llm.generate_async("hi"))
    assert llm.created == 3

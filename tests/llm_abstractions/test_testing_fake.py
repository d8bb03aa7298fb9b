"""``FakeLlm``, the public test double: scripts, callables, failures, latency, call log, echo."""

from __future__ import annotations

import doctest
import time

import pytest

from coditect_core.errors import (
    LlmAuthenticationError,
    LlmContentFilterError,
    LlmResponseError,
    LlmServerError,
)
from coditect_core.llm_abstractions import NO_RETRY, FakeLlm, Message, create_llm
from coditect_core.llm_abstractions import testing as testing_module


async def test_scripted_replies_in_order_then_the_default_echo() -> None:
    llm = FakeLlm(["one", "two"])
    assert await llm.generate_content_async("a") == "one"
    assert await llm.generate_content_async("b") == "two"
    assert await llm.generate_content_async("third question") == "fake reply to: third question"


async def test_default_echo_uses_the_last_user_message() -> None:
    llm = FakeLlm()
    reply = await llm.generate_content_async(
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "second"},
        ]
    )
    assert reply == "fake reply to: second"


async def test_default_echo_without_a_user_message() -> None:
    reply = await FakeLlm().generate_content_async([{"role": "assistant", "content": "hello"}])
    assert reply == "fake reply to: hello"


async def test_default_can_be_a_string_or_a_callable() -> None:
    assert await FakeLlm(default="always").generate_content_async("x") == "always"
    llm = FakeLlm(default=lambda msgs: str(len(msgs)))
    assert await llm.generate_content_async([{"role": "user", "content": "x"}] * 3) == "3"


async def test_callable_replies_see_the_messages() -> None:
    seen: list[list[Message]] = []

    def reply(messages: list[Message]) -> str:
        seen.append(messages)
        return messages[-1]["content"].upper()

    llm = FakeLlm([reply])
    assert await llm.generate_content_async("shout") == "SHOUT"
    assert seen == [[{"role": "user", "content": "shout"}]]


async def test_callable_may_return_a_failure() -> None:
    llm = FakeLlm([lambda messages: LlmContentFilterError("refused")])
    with pytest.raises(LlmContentFilterError):
        await llm.generate_content_async("x")


async def test_scripted_failures_are_attempts_and_retried_by_the_policy() -> None:
    llm = FakeLlm([LlmServerError("503"), LlmServerError, "recovered"])
    response = await llm.generate_async("x")
    assert (response.text, response.attempts) == ("recovered", 3)
    assert len(llm.calls) == 3


async def test_exception_class_is_raised_as_an_instance() -> None:
    llm = FakeLlm([LlmAuthenticationError])
    with pytest.raises(LlmAuthenticationError, match="scripted LlmAuthenticationError"):
        await llm.generate_async("x")


async def test_non_retryable_failure_is_raised_once() -> None:
    llm = FakeLlm([LlmAuthenticationError("401"), "unused"])
    with pytest.raises(LlmAuthenticationError):
        await llm.generate_async("x")
    assert len(llm.calls) == 1
    assert list(llm.replies) == ["unused"]


async def test_foreign_exceptions_are_mapped_like_a_real_provider() -> None:
    llm = FakeLlm([ZeroDivisionError("oops")], retry=NO_RETRY)
    with pytest.raises(LlmResponseError, match="ZeroDivisionError"):
        await llm.generate_async("x")


async def test_latency_is_waited_before_every_reply() -> None:
    llm = FakeLlm(["a", "b"], latency=0.05)
    before = time.monotonic()
    first = await llm.generate_async("x")
    between = time.monotonic()
    second = await llm.generate_async("y")
    after = time.monotonic()
    # The sleep happened, in each call, and each latency is that call's own (not a sum).
    # (0.04: asyncio may wake a clock tick early.)
    assert 0.04 <= first.latency_s <= between - before
    assert 0.04 <= second.latency_s <= after - between
    assert (await FakeLlm(["c"]).generate_async("z")).latency_s < first.latency_s


async def test_call_log_records_messages_and_settings() -> None:
    llm = FakeLlm(model="fake-large", temperature=0.3)
    await llm.generate_async("first")
    await llm.generate_async([{"role": "user", "content": "second"}], max_tokens=2, seed=7)
    assert [c.messages for c in llm.calls] == [
        [{"role": "user", "content": "first"}],
        [{"role": "user", "content": "second"}],
    ]
    first, second = (c.params for c in llm.calls)
    assert (first.model, first.temperature, first.max_tokens) == ("fake-large", 0.3, None)
    assert (second.max_tokens, second.options) == (2, {"seed": 7})


async def test_max_tokens_truncates_by_words_and_usage_counts_words() -> None:
    llm = FakeLlm(["one two three four"])
    response = await llm.generate_async("a b c", max_tokens=2)
    assert response.text == "one two"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 2)
    assert response.finish_reason == "stop"


async def test_stream_is_chunked_and_logged() -> None:
    llm = FakeLlm(["0123456789"], chunk_size=4)
    stream = llm.stream_content_async("x")
    assert [d async for d in stream] == ["0123", "4567", "89"]
    assert len(llm.calls) == 1
    assert stream.response is not None
    assert stream.response.text == "0123456789"


def test_registered_as_fake() -> None:
    llm = create_llm("fake", model="fake-2")
    assert isinstance(llm, FakeLlm)
    assert llm.generate_content("ping") == "fake reply to: ping"


def test_needs_no_key_and_counts_closes() -> None:
    llm = FakeLlm()
    assert llm.api_key is None
    llm.generate_content("x")
    assert llm.closed == 1


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(testing_module)
    assert result.attempted >= 4
    assert result.failed == 0

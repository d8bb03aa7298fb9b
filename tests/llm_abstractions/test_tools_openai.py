"""Tool calling on the OpenAI chat format (``Gpt``, ``OpenAICompatible``): the real openai SDK
against the loopback stub; every assertion on the wire is on what the stub received."""

from __future__ import annotations

from typing import Any

import pytest
from provider_contract import FAST, KEY
from stub_server import StubServer, reply

from coditect_core.errors import LlmConfigurationError, LlmRequestError
from coditect_core.llm_abstractions import Gpt, OpenAICompatible, Tool, ToolCall, tool_message

WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("clock", "The time in a city.", WEATHER.parameters, strict=True)

TWO_CALLS = [
    {"id": "call_a", "name": "weather", "arguments": {"city": "Oslo"}},
    {"id": "call_b", "name": "clock", "arguments": {"city": "Lima"}},
]


def make(stub: StubServer, **settings: Any) -> Gpt:
    settings.setdefault("retry", FAST)
    return Gpt(api_key=KEY, base_url=stub.openai_url, **settings)


async def test_tools_and_choice_are_sent_as_functions(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        await llm.generate_async("hi", tools=[WEATHER, TIME], tool_choice="required")
        await llm.generate_async("hi", tools=[WEATHER, TIME], tool_choice="clock")
        await llm.generate_async("hi", tools=[WEATHER], tool_choice="none")
        await llm.generate_async("hi")
    first, named, none, plain = (r.body for r in stub_server.requests)
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather in a city.",
                "parameters": dict(WEATHER.parameters),
            },
        },
        {
            "type": "function",
            "function": {
                "name": "clock",
                "description": "The time in a city.",
                "parameters": dict(WEATHER.parameters),
                "strict": True,
            },
        },
    ]
    assert first["tool_choice"] == "required"
    assert named["tool_choice"] == {"type": "function", "function": {"name": "clock"}}
    assert none["tool_choice"] == "none"
    assert "parallel_tool_calls" not in first  # left to the model
    assert "tools" not in plain
    assert "tool_choice" not in plain


async def test_tool_choice_naming_an_unknown_tool_is_refused_before_sending(
    stub_server: StubServer,
) -> None:
    async with make(stub_server) as llm:
        with pytest.raises(LlmRequestError, match=r"'clock'.*given: weather"):
            await llm.generate_async("hi", tools=[WEATHER], tool_choice="clock")
    assert stub_server.request_count == 0


async def test_two_parallel_calls_come_back_as_tool_calls(stub_server: StubServer) -> None:
    stub_server.script(reply(tool_calls=TWO_CALLS))
    async with make(stub_server) as llm:
        response = await llm.generate_async("weather and time?", tools=[WEATHER, TIME])
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert response.tool_calls == [
        ToolCall("call_a", "weather", {"city": "Oslo"}),
        ToolCall("call_b", "clock", {"city": "Lima"}),
    ]


async def test_the_next_request_carries_the_calls_and_both_results(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply(tool_calls=TWO_CALLS), reply("Sunny, 10:00."))
    async with make(stub_server) as llm:
        messages: list[Any] = [{"role": "user", "content": "weather and time?"}]
        first = await llm.generate_async(messages, tools=[WEATHER, TIME])
        messages.append({"role": "assistant", "content": "", "tool_calls": first.tool_calls})
        messages.append(tool_message(first.tool_calls[0], "sunny"))
        messages.append(tool_message(first.tool_calls[1], "no such city", is_error=True))
        second = await llm.generate_async(messages, tools=[WEATHER, TIME])
    assert second.text == "Sunny, 10:00."
    assert second.tool_calls == []
    sent = stub_server.requests[-1].body["messages"]
    assert sent == [
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "clock", "arguments": '{"city": "Lima"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "ERROR: no such city"},
    ]


async def test_undecodable_arguments_are_kept_and_sent_back_as_they_were(
    stub_server: StubServer,
) -> None:
    broken = '{"city": "Oslo"'
    stub_server.script(
        reply(tool_calls=[{"id": "c1", "name": "weather", "arguments": broken}]), reply("ok")
    )
    async with make(stub_server) as llm:
        first = await llm.generate_async("w?", tools=[WEATHER])
        (call,) = first.tool_calls
        assert call.arguments == {}
        assert call.invalid_arguments == broken
        messages: list[Any] = [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            tool_message(call, "arguments are not JSON", is_error=True),
        ]
        await llm.generate_async(messages, tools=[WEATHER])
    assistant = stub_server.requests[-1].body["messages"][1]
    assert assistant["tool_calls"][0]["function"]["arguments"] == broken


async def test_text_and_calls_in_one_reply(stub_server: StubServer) -> None:
    stub_server.script(reply("Let me look.", tool_calls=TWO_CALLS[:1]))
    async with make(stub_server) as llm:
        response = await llm.generate_async("w?", tools=[WEATHER])
    assert response.text == "Let me look."
    assert [c.name for c in response.tool_calls] == ["weather"]


@pytest.mark.parametrize("cls", [Gpt, OpenAICompatible])
async def test_streaming_assembles_the_calls_from_their_deltas(
    stub_server: StubServer, cls: type[Gpt]
) -> None:
    stub_server.script(reply("Checking.", tool_calls=TWO_CALLS))
    async with cls(api_key=KEY, base_url=stub_server.openai_url, model="m", retry=FAST) as llm:
        stream = llm.stream_content_async("w?", tools=[WEATHER, TIME], tool_choice="auto")
        text = "".join([d async for d in stream])
    assert text == "Checking."
    assert stream.response is not None
    assert stream.response.finish_reason == "tool_calls"
    assert stream.response.tool_calls == [
        ToolCall("call_a", "weather", {"city": "Oslo"}),
        ToolCall("call_b", "clock", {"city": "Lima"}),
    ]
    body = stub_server.requests[-1].body
    assert body["stream"] is True
    assert [t["function"]["name"] for t in body["tools"]] == [
        "weather",
        "clock",
    ]


async def test_streamed_undecodable_arguments_are_kept(stub_server: StubServer) -> None:
    stub_server.script(reply(tool_calls=[{"id": "c1", "name": "weather", "arguments": "{oops"}]))
    async with make(stub_server) as llm:
        stream = llm.stream_content_async("w?", tools=[WEATHER])
        assert [d async for d in stream] == []
    assert stream.response is not None
    assert stream.response.tool_calls == [ToolCall("c1", "weather", {}, "{oops")]


async def test_a_compatible_server_saying_stop_with_calls_finishes_tool_calls(
    stub_server: StubServer,
) -> None:
    # Ollama answers finish_reason "stop" with tool calls; a loop must still see them.
    stub_server.script(reply(tool_calls=TWO_CALLS[:1], finish_reason="stop"))
    async with OpenAICompatible(base_url=stub_server.openai_url, model="m", retry=FAST) as llm:
        response = await llm.generate_async("w?", tools=[WEATHER])
    assert response.finish_reason == "tool_calls"
    assert [c.id for c in response.tool_calls] == ["call_a"]


async def test_a_provider_without_tools_refuses_before_any_request(
    stub_server: StubServer,
) -> None:
    class NoTools(OpenAICompatible):
        supports_tools = False

    async with NoTools(base_url=stub_server.openai_url, model="m", retry=FAST) as llm:
        with pytest.raises(LlmConfigurationError, match="cannot call tools"):
            await llm.generate_async("w?", tools=[WEATHER])
        with pytest.raises(LlmConfigurationError, match="cannot call tools"):
            llm.stream_content_async("w?", tools=[WEATHER])
    assert stub_server.request_count == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_cut_off_at_max_tokens_finishes_length(
    stub_server: StubServer, stream: bool
) -> None:
    cut = [{"id": "c1", "name": "weather", "arguments": '{"city": "Os'}]
    stub_server.script(reply(tool_calls=cut, finish_reason="length"))
    async with make(stub_server) as llm:
        if stream:
            streamed = llm.stream_content_async("w?", tools=[WEATHER], max_tokens=5)
            assert "".join([d async for d in streamed]) == ""
            response = streamed.response
        else:
            response = await llm.generate_async("w?", tools=[WEATHER], max_tokens=5)
    assert response is not None
    assert response.finish_reason == "length"  # not tool_calls: the call may be incomplete
    assert response.tool_calls == [ToolCall("c1", "weather", {}, '{"city": "Os')]

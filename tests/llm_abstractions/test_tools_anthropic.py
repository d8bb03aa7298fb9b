"""Tool calling on Anthropic's Messages API (``Claude``): the real anthropic SDK against the
loopback stub; every assertion on the wire is on what the stub received."""

from __future__ import annotations

from typing import Any

import pytest
from provider_contract import FAST, KEY
from stub_server import StubServer, reply

from coditect_core.errors import LlmConfigurationError
from coditect_core.llm_abstractions import Claude, Tool, ToolCall, tool_message

WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool("clock", "", WEATHER.parameters)

TWO_CALLS = [
    {"id": "toolu_a", "name": "weather", "arguments": {"city": "Oslo"}},
    {"id": "toolu_b", "name": "clock", "arguments": {"city": "Lima"}},
]


def make(stub: StubServer, **settings: Any) -> Claude:
    settings.setdefault("retry", FAST)
    return Claude(api_key=KEY, base_url=stub.url, **settings)


async def test_tools_and_choice_in_the_messages_api_shape(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        for choice in ("auto", "required", "none", "clock"):
            await llm.generate_async("hi", tools=[WEATHER, CLOCK], tool_choice=choice)
        await llm.generate_async("hi", tools=[WEATHER])
        await llm.generate_async("hi")
    bodies = [r.body for r in stub_server.requests]
    assert bodies[0]["tools"] == [
        {
            "name": "weather",
            "description": "The weather in a city.",
            "input_schema": dict(WEATHER.parameters),
        },
        {"name": "clock", "input_schema": dict(WEATHER.parameters)},
    ]
    assert [b["tool_choice"] for b in bodies[:4]] == [
        {"type": "auto"},
        {"type": "any"},
        {"type": "none"},
        {"type": "tool", "name": "clock"},
    ]
    assert "tool_choice" not in bodies[4]
    assert "tools" not in bodies[5]


async def test_text_and_two_tool_use_blocks_in_one_reply(stub_server: StubServer) -> None:
    stub_server.script(reply("Let me check.", tool_calls=TWO_CALLS))
    async with make(stub_server) as llm:
        response = await llm.generate_async("weather and time?", tools=[WEATHER, CLOCK])
    assert response.text == "Let me check."
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCall("toolu_a", "weather", {"city": "Oslo"}),
        ToolCall("toolu_b", "clock", {"city": "Lima"}),
    ]


async def test_all_results_of_one_turn_go_in_the_one_next_user_message(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply("Let me check.", tool_calls=TWO_CALLS), reply("Sunny at ten."))
    async with make(stub_server) as llm:
        messages: list[Any] = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather and time?"},
        ]
        first = await llm.generate_async(messages, tools=[WEATHER, CLOCK])
        messages.append(
            {"role": "assistant", "content": first.text, "tool_calls": first.tool_calls}
        )
        messages.append(tool_message(first.tool_calls[0], "sunny"))
        messages.append(tool_message(first.tool_calls[1], "no such city", is_error=True))
        messages.append({"role": "user", "content": "and be quick"})
        second = await llm.generate_async(messages, tools=[WEATHER, CLOCK])
    assert second.text == "Sunny at ten."
    body = stub_server.requests[-1].body
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_b", "name": "clock", "input": {"city": "Lima"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": "no such city",
                    "is_error": True,
                },
                {"type": "text", "text": "and be quick"},
            ],
        },
    ]


async def test_a_calls_only_turn_and_an_empty_result_have_no_empty_text(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply(tool_calls=TWO_CALLS[:1]), reply("done"))
    async with make(stub_server) as llm:
        first = await llm.generate_async("w?", tools=[WEATHER])
        assert first.text == ""
        messages: list[Any] = [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
            tool_message(first.tool_calls[0], ""),
        ]
        await llm.generate_async(messages, tools=[WEATHER])
    sent = stub_server.requests[-1].body["messages"]
    assert sent[1]["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Oslo"}}
    ]
    # an empty result has no content (optional; an empty text is refused by the API)
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_a"}],
    }


async def test_plain_conversations_are_sent_as_before(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        await llm.generate_async(
            [
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
            ]
        )
    assert stub_server.requests[-1].body["messages"] == [
        {"role": "user", "content": "(continue)"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "a\n\nb"},
    ]


async def test_streaming_assembles_input_json_deltas(stub_server: StubServer) -> None:
    stub_server.script(reply("Checking.", tool_calls=TWO_CALLS))
    async with make(stub_server) as llm:
        stream = llm.stream_content_async("w?", tools=[WEATHER, CLOCK])
        text = "".join([d async for d in stream])
    assert text == "Checking."
    assert stream.response is not None
    assert stream.response.finish_reason == "tool_calls"
    assert stream.response.tool_calls == [
        ToolCall("toolu_a", "weather", {"city": "Oslo"}),
        ToolCall("toolu_b", "clock", {"city": "Lima"}),
    ]


async def test_streamed_undecodable_input_is_kept(stub_server: StubServer) -> None:
    stub_server.script(reply(tool_calls=[{"id": "t1", "name": "weather", "arguments": '{"ci'}]))
    async with make(stub_server) as llm:
        stream = llm.stream_content_async("w?", tools=[WEATHER])
        assert [d async for d in stream] == []
    assert stream.response is not None
    assert stream.response.tool_calls == [ToolCall("t1", "weather", {}, '{"ci')]


async def test_without_tool_support_nothing_is_sent(stub_server: StubServer) -> None:
    class NoTools(Claude):
        supports_tools = False

    async with NoTools(api_key=KEY, base_url=stub_server.url, retry=FAST) as llm:
        with pytest.raises(LlmConfigurationError, match="cannot call tools"):
            await llm.generate_async("w?", tools=[WEATHER])
    assert stub_server.request_count == 0

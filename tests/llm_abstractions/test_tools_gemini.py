"""Tool calling on Gemini (``Gemini``): the real google-genai SDK against the loopback stub;
every assertion on the wire is on what the stub received."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from provider_contract import FAST, KEY
from stub_server import StubServer, reply

from coditect_core.errors import LlmConfigurationError
from coditect_core.llm_abstractions import Gemini, Tool, ToolCall, tool_message
from coditect_core.llm_abstractions.gemini import MADE_ID_PREFIX

WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool("clock", "", WEATHER.parameters)

# What Gemini's old `parameters` refuses: $defs, $ref, additionalProperties; and snake_case
# property names, which must not be camel-cased on the way.
NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Range": {
            "type": "object",
            "properties": {"first_line": {"type": "integer"}, "last_line": {"type": "integer"}},
            "required": ["first_line"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "file_path": {"type": "string"},
        "line_range": {"$ref": "#/$defs/Range"},
        "options": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["file_path"],
    "additionalProperties": False,
}

TWO_CALLS = [
    {"name": "weather", "arguments": {"city": "Oslo"}},
    {"name": "clock", "arguments": {"city": "Lima"}},
]


def make(stub: StubServer, **settings: Any) -> Gemini:
    settings.setdefault("retry", FAST)
    return Gemini(api_key=KEY, base_url=stub.url + "/", **settings)


async def test_a_schema_with_defs_refs_and_additional_properties_reaches_the_api_as_sent(
    stub_server: StubServer,
) -> None:
    tool = Tool("read_range", "Read lines of a file.", NESTED_SCHEMA)
    async with make(stub_server) as llm:
        await llm.generate_async("read it", tools=[tool])
    body = stub_server.requests[-1].body
    # The SDK sends declarations under the proto field name (parameters_json_schema), which the
    # API reads as parametersJsonSchema; the schema inside goes untouched (no camel-casing).
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "read_range",
                    "description": "Read lines of a file.",
                    "parameters_json_schema": NESTED_SCHEMA,
                }
            ]
        }
    ]
    assert "parameters" not in body["tools"][0]["functionDeclarations"][0]


async def test_tool_choice_as_function_calling_config(stub_server: StubServer) -> None:
    async with make(stub_server) as llm:
        for choice in ("auto", "required", "none", "clock"):
            await llm.generate_async("hi", tools=[WEATHER, CLOCK], tool_choice=choice)
        await llm.generate_async("hi", tools=[WEATHER])
        await llm.generate_async("hi")
    bodies = [r.body for r in stub_server.requests]
    assert [b["toolConfig"]["functionCallingConfig"] for b in bodies[:4]] == [
        {"mode": "AUTO"},
        {"mode": "ANY"},
        {"mode": "NONE"},
        {"mode": "ANY", "allowedFunctionNames": ["clock"]},
    ]
    assert "toolConfig" not in bodies[4]
    assert "tools" not in bodies[5]


async def test_parallel_function_calls_without_ids_get_stable_ones(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply(tool_calls=TWO_CALLS), reply(tool_calls=TWO_CALLS))
    async with make(stub_server) as llm:
        first = await llm.generate_async("weather and time?", tools=[WEATHER, CLOCK])
        again = await llm.generate_async("weather and time?", tools=[WEATHER, CLOCK])
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    assert [(c.name, dict(c.arguments)) for c in first.tool_calls] == [
        ("weather", {"city": "Oslo"}),
        ("clock", {"city": "Lima"}),
    ]
    ids = [c.id for c in first.tool_calls]
    assert len(set(ids)) == 2
    assert all(i.startswith(MADE_ID_PREFIX) for i in ids)
    assert [c.id for c in again.tool_calls] == ids  # the same answer, the same ids


async def test_both_results_go_back_in_one_content_matched_by_name(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply("Checking.", tool_calls=TWO_CALLS), reply("Sunny at ten."))
    async with make(stub_server) as llm:
        messages: list[Any] = [{"role": "user", "content": "weather and time?"}]
        first = await llm.generate_async(messages, tools=[WEATHER, CLOCK])
        messages.append(
            {"role": "assistant", "content": first.text, "tool_calls": first.tool_calls}
        )
        messages.append(tool_message(first.tool_calls[0], "sunny"))
        messages.append(tool_message(first.tool_calls[1], "no such city", is_error=True))
        second = await llm.generate_async(messages, tools=[WEATHER, CLOCK])
    assert second.text == "Sunny at ten."
    assert stub_server.requests[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "clock", "args": {"city": "Lima"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"result": "sunny"}}},
                {"functionResponse": {"name": "clock", "response": {"error": "no such city"}}},
            ],
        },
    ]


async def test_ids_gemini_gives_are_kept_and_sent_back(stub_server: StubServer) -> None:
    calls = [{"id": "fc-1", "name": "weather", "arguments": {"city": "Oslo"}}]
    stub_server.script(reply(tool_calls=calls), reply("ok"))
    async with make(stub_server) as llm:
        first = await llm.generate_async("w?", tools=[WEATHER])
        assert [c.id for c in first.tool_calls] == ["fc-1"]
        messages: list[Any] = [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
            tool_message(first.tool_calls[0], "sunny"),
            {"role": "user", "content": "thanks"},
        ]
        await llm.generate_async(messages, tools=[WEATHER])
    contents = stub_server.requests[-1].body["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"id": "fc-1", "name": "weather", "args": {"city": "Oslo"}}}
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": "fc-1",
                    "name": "weather",
                    "response": {"result": "sunny"},
                }
            },
            {"text": "thanks"},
        ],
    }


async def test_a_thought_signature_goes_back_with_its_call(stub_server: StubServer) -> None:
    signature = base64.b64encode(b"opaque-signature").decode()
    given = {"id": "fc-9", "name": "weather", "arguments": {"city": "Oslo"}}
    stub_server.script(reply(tool_calls=[{**given, "signature": signature}]), reply("ok"))
    async with make(stub_server) as llm:
        first = await llm.generate_async("w?", tools=[WEATHER])
        (call,) = first.tool_calls
        assert call.signature == signature
        await llm.generate_async(
            [
                {"role": "user", "content": "w?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                tool_message(call, "sunny"),
            ],
            tools=[WEATHER],
        )
    part = stub_server.requests[-1].body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == signature
    assert ToolCall.from_dict(call.to_dict()) == call


async def test_streaming_collects_calls_from_several_chunks(stub_server: StubServer) -> None:
    stub_server.script(reply("Checking.", tool_calls=TWO_CALLS))
    async with make(stub_server) as llm:
        stream = llm.stream_content_async("w?", tools=[WEATHER, CLOCK])
        text = "".join([d async for d in stream])
    assert text == "Checking."
    assert stream.response is not None
    assert stream.response.finish_reason == "tool_calls"
    assert [(c.name, dict(c.arguments)) for c in stream.response.tool_calls] == [
        ("weather", {"city": "Oslo"}),
        ("clock", {"city": "Lima"}),
    ]
    assert len({c.id for c in stream.response.tool_calls}) == 2


async def test_without_tool_support_nothing_is_sent(stub_server: StubServer) -> None:
    class NoTools(Gemini):
        supports_tools = False

    async with NoTools(api_key=KEY, base_url=stub_server.url + "/", retry=FAST) as llm:
        with pytest.raises(LlmConfigurationError, match="cannot call tools"):
            await llm.generate_async("w?", tools=[WEATHER])
    assert stub_server.request_count == 0

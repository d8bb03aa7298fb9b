"""Typed outputs on the real SDKs against the loopback stub (OpenAI, Anthropic, Gemini formats):
the vendor's schema field in the request the stub received, the value parsed and validated, an
invalid first answer re-asked with its errors, and the bound."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from provider_contract import FAST, KEY
from pydantic import BaseModel
from stub_server import RecordedRequest, StubServer, reply

from coditect_core.errors import LlmConfigurationError, LlmOutputValidationError
from coditect_core.llm_abstractions import BaseLlm, Claude, Gemini, Gpt, OpenAICompatible

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    "required": ["name", "count"],
    "additionalProperties": False,
}
GOOD = {"name": "apples", "count": 3}


class Fruit(BaseModel):
    name: str
    count: int


def make_gpt(stub: StubServer) -> BaseLlm:
    return Gpt(api_key=KEY, base_url=stub.openai_url, retry=FAST)


def make_claude(stub: StubServer) -> BaseLlm:
    return Claude(api_key=KEY, base_url=stub.url, retry=FAST)


def make_gemini(stub: StubServer) -> BaseLlm:
    return Gemini(api_key=KEY, base_url=stub.url + "/", retry=FAST)


def openai_schema(request: RecordedRequest) -> Any:
    fmt = request.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"]
    assert fmt["json_schema"]["strict"] in (True, False)
    return fmt["json_schema"]["schema"]


def anthropic_schema(request: RecordedRequest) -> Any:
    fmt = request.body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    return fmt["schema"]


def gemini_schema(request: RecordedRequest) -> Any:
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return config["responseJsonSchema"]


def openai_turns(request: RecordedRequest) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.body["messages"]]


def anthropic_turns(request: RecordedRequest) -> list[tuple[str, str]]:
    turns = []
    for m in request.body["messages"]:
        content = m["content"]
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        turns.append((m["role"], text))
    return turns


def gemini_turns(request: RecordedRequest) -> list[tuple[str, str]]:
    return [
        ("assistant" if c["role"] == "model" else c["role"], "".join(p["text"] for p in c["parts"]))
        for c in request.body["contents"]
    ]


Make = Callable[[StubServer], BaseLlm]
Read = Callable[[RecordedRequest], Any]
FORMATS = [
    pytest.param(make_gpt, openai_schema, openai_turns, id="openai"),
    pytest.param(make_claude, anthropic_schema, anthropic_turns, id="anthropic"),
    pytest.param(make_gemini, gemini_schema, gemini_turns, id="gemini"),
]


@pytest.mark.parametrize(("make", "schema_of", "turns_of"), FORMATS)
async def test_native_mode_sends_the_vendor_schema_field(
    stub_server: StubServer, make: Make, schema_of: Read, turns_of: Read
) -> None:
    stub_server.script(reply(json.dumps(GOOD)))
    async with make(stub_server) as llm:
        response = await llm.generate_async("count the apples", output_schema=SCHEMA)
    assert response.value == GOOD
    assert response.output_mode == "native"
    assert schema_of(stub_server.requests[-1]) == SCHEMA


@pytest.mark.parametrize(("make", "schema_of", "turns_of"), FORMATS)
async def test_prompted_mode_sends_no_schema_field_and_parses_the_reply(
    stub_server: StubServer, make: Make, schema_of: Read, turns_of: Read
) -> None:
    stub_server.script(reply(f"```json\n{json.dumps(GOOD)}\n```"))
    async with make(stub_server) as llm:
        response = await llm.generate_async(
            "count the apples", output_schema=Fruit, output_mode="prompted"
        )
    assert response.value == Fruit(**GOOD)
    assert response.output_mode == "prompted"
    sent = stub_server.requests[-1]
    with pytest.raises((KeyError, TypeError)):
        schema_of(sent)
    assert "matches this JSON Schema" in str(sent.body)  # in the system prompt
    assert '"required": ["name", "count"]' in str(sent.body)


@pytest.mark.parametrize(("make", "schema_of", "turns_of"), FORMATS)
async def test_an_invalid_first_answer_is_re_asked_with_the_errors(
    stub_server: StubServer, make: Make, schema_of: Read, turns_of: Read
) -> None:
    bad = json.dumps({"name": "apples"})
    stub_server.script(reply(bad), reply(json.dumps(GOOD)))
    async with make(stub_server) as llm:
        response = await llm.generate_async("count the apples", output_schema=SCHEMA)
    assert response.value == GOOD
    assert response.output_tries == 2
    assert stub_server.request_count == 2
    second = turns_of(stub_server.requests[-1])
    assert second[-2] == ("assistant", bad)
    assert second[-1][0] == "user"
    assert "'count' is a required property" in second[-1][1]
    assert schema_of(stub_server.requests[-1]) == SCHEMA


@pytest.mark.parametrize(("make", "schema_of", "turns_of"), FORMATS)
async def test_a_model_that_never_complies_fails_after_the_bound(
    stub_server: StubServer, make: Make, schema_of: Read, turns_of: Read
) -> None:
    stub_server.script(*[reply("not json at all") for _ in range(3)])
    async with make(stub_server) as llm:
        with pytest.raises(LlmOutputValidationError) as caught:
            await llm.generate_async("count", output_schema=SCHEMA, output_retries=1)
    assert stub_server.request_count == 2
    assert caught.value.tries == 2
    assert caught.value.reply == "not json at all"
    assert len(caught.value.errors) == 1
    assert "not JSON" in caught.value.errors[0]


async def test_openai_strict_only_for_a_closed_schema(stub_server: StubServer) -> None:
    open_schema = {k: v for k, v in SCHEMA.items() if k != "additionalProperties"}
    stub_server.script(reply(json.dumps(GOOD)), reply(json.dumps(GOOD)))
    async with make_gpt(stub_server) as llm:
        await llm.generate_async("count", output_schema=SCHEMA)
        await llm.generate_async("count", output_schema=open_schema)
    first, second = stub_server.requests
    assert first.body["response_format"]["json_schema"]["strict"] is True
    assert second.body["response_format"]["json_schema"]["strict"] is False


async def test_an_openai_compatible_server_gets_response_format(stub_server: StubServer) -> None:
    """llama.cpp's server (and others speaking the format) take response_format json_schema."""
    stub_server.script(reply(json.dumps(GOOD)))
    async with OpenAICompatible(model="m", base_url=stub_server.openai_url, retry=FAST) as llm:
        response = await llm.generate_async("count", output_schema=SCHEMA)
    assert response.value == GOOD
    assert openai_schema(stub_server.requests[-1]) == SCHEMA


async def test_a_llama_cpp_python_server_gets_json_object_with_the_schema(
    stub_server: StubServer,
) -> None:
    stub_server.script(reply(json.dumps(GOOD)))
    async with OpenAICompatible(
        model="m", base_url=stub_server.openai_url, retry=FAST, structured_output="json_object"
    ) as llm:
        response = await llm.generate_async("count", output_schema=SCHEMA)
    assert response.value == GOOD
    assert stub_server.requests[-1].body["response_format"] == {
        "type": "json_object",
        "schema": SCHEMA,
    }
    assert "structured_output" not in stub_server.requests[-1].body
    with pytest.raises(LlmConfigurationError, match="structured_output 'xml'"):
        OpenAICompatible(model="m", base_url=stub_server.openai_url, structured_output="xml")


async def test_anthropic_keeps_the_agents_own_output_config(stub_server: StubServer) -> None:
    stub_server.script(reply(json.dumps(GOOD)))
    async with Claude(
        api_key=KEY, base_url=stub_server.url, retry=FAST, output_config={"effort": "low"}
    ) as llm:
        await llm.generate_async("count", output_schema=SCHEMA)
    config = stub_server.requests[-1].body["output_config"]
    assert config["effort"] == "low"
    assert config["format"]["schema"] == SCHEMA


# ------------------------------------------------------------------ tool mode (forced tool call)


def openai_tool(request: RecordedRequest) -> Any:
    (tool,) = request.body["tools"]
    assert request.body["tool_choice"] == {"type": "function", "function": {"name": "final_result"}}
    assert tool["function"]["name"] == "final_result"
    return tool["function"]["parameters"]


def anthropic_tool(request: RecordedRequest) -> Any:
    (tool,) = request.body["tools"]
    assert request.body["tool_choice"] == {"type": "tool", "name": "final_result"}
    assert tool["name"] == "final_result"
    return tool["input_schema"]


def gemini_tool(request: RecordedRequest) -> Any:
    (tools,) = request.body["tools"]
    (declaration,) = tools["functionDeclarations"]
    assert request.body["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["final_result"],
    }
    assert declaration["name"] == "final_result"
    return declaration["parameters_json_schema"]


TOOL_FORMATS = [
    pytest.param(make_gpt, openai_tool, id="openai"),
    pytest.param(make_claude, anthropic_tool, id="anthropic"),
    pytest.param(make_gemini, gemini_tool, id="gemini"),
]


def call(arguments: dict[str, Any], number: int = 1) -> dict[str, Any]:
    return {"id": f"call_{number}", "name": "final_result", "arguments": arguments}


@pytest.mark.parametrize(("make", "tool_of"), TOOL_FORMATS)
async def test_tool_mode_forces_the_schema_tool_and_reads_its_arguments(
    stub_server: StubServer, make: Make, tool_of: Read
) -> None:
    stub_server.script(reply(tool_calls=[call(GOOD)], finish_reason="tool_calls"))
    async with make(stub_server) as llm:
        response = await llm.generate_async("count", output_schema=SCHEMA, output_mode="tool")
    assert response.value == GOOD
    assert response.output_mode == "tool"
    assert tool_of(stub_server.requests[-1]) == SCHEMA


@pytest.mark.parametrize(("make", "tool_of"), TOOL_FORMATS)
async def test_tool_mode_re_asks_with_the_errors_as_the_tool_result(
    stub_server: StubServer, make: Make, tool_of: Read
) -> None:
    stub_server.script(
        reply(tool_calls=[call({"name": "apples"})], finish_reason="tool_calls"),
        reply(tool_calls=[call(GOOD, 2)], finish_reason="tool_calls"),
    )
    async with make(stub_server) as llm:
        response = await llm.generate_async("count", output_schema=SCHEMA, output_mode="tool")
    assert response.value == GOOD
    assert response.output_tries == 2
    second = stub_server.requests[-1]
    assert tool_of(second) == SCHEMA
    sent = json.dumps(second.body)
    assert "'count' is a required property" in sent  # the errors, as the call's result
    assert "apples" in sent  # the invalid call, sent back with its answer

"""Tool calling's values and messages: Tool from a function, ToolCall arguments, the message
model's tool shapes (every call answered), tools refused by a provider that takes none, and
FakeLlm's scripted calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coditect_core.errors import LlmConfigurationError, LlmRequestError
from coditect_core.llm_abstractions import (
    BaseLlm,
    CallParams,
    FakeLlm,
    LlmResponse,
    Tool,
    ToolCall,
    normalize_messages,
    tool_message,
)
from coditect_core.llm_abstractions.messages import Message, merge_consecutive


def lookup(city: str, days: int = 1, units: str = "metric") -> str:
    """Look up the weather of a city."""
    return f"{city}:{days}:{units}"


def test_tool_from_function_declares_its_parameters() -> None:
    tool = Tool.from_function(lookup)
    assert tool.name == "lookup"
    assert tool.description == "Look up the weather of a city."
    assert tool.parameters["type"] == "object"
    assert set(tool.parameters["properties"]) == {"city", "days", "units"}
    assert tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["days"]["type"] == "integer"


@pytest.mark.parametrize(
    ("function", "words"),
    [
        (lambda x: x, "has no type hint"),
        (lambda *args: None, "no *args"),
    ],
)
def test_tool_from_function_refuses_what_it_cannot_declare(function: Any, words: str) -> None:
    with pytest.raises(LlmRequestError, match=words.replace("*", r"\*")):
        Tool.from_function(function, name="f")


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dot.ted"])
def test_tool_names_every_provider_accepts(name: str) -> None:
    with pytest.raises(LlmRequestError, match="tool name"):
        Tool(name=name)


def test_tool_call_keeps_arguments_that_are_not_a_json_object() -> None:
    good = ToolCall.from_json("c1", "lookup", '{"city": "Oslo"}')
    assert good.arguments == {"city": "Oslo"}
    assert good.invalid_arguments is None
    bad = ToolCall.from_json("c2", "lookup", '{"city": ')
    assert bad.arguments == {}
    assert bad.invalid_arguments == '{"city": '
    assert ToolCall.from_json("c3", "lookup", "[1]").invalid_arguments == "[1]"
    assert ToolCall.from_dict(bad.to_dict()) == bad
    assert ToolCall.from_dict({"id": "c4", "name": "n", "arguments": '{"a": 1}'}).arguments == {
        "a": 1
    }


def _conversation() -> list[dict[str, Any]]:
    a = ToolCall("a", "lookup", {"city": "Oslo"})
    b = ToolCall("b", "lookup", {"city": "Rome"})
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [a, b.to_dict()]},
        dict(tool_message(a, "cold")),
        dict(tool_message(b, "boom", is_error=True)),
        {"role": "assistant", "content": "Oslo is cold."},
    ]


def test_messages_carry_tool_calls_and_results() -> None:
    msgs = normalize_messages(_conversation())
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = msgs[1]["tool_calls"]
    assert [c.id for c in calls] == ["a", "b"]
    assert isinstance(calls[1], ToolCall)
    assert msgs[1]["content"] == ""
    assert msgs[3]["is_error"] is True
    assert msgs[3]["tool_call_id"] == "b"
    # merging for alternating APIs keeps tool turns as they are
    merged = merge_consecutive(msgs)
    assert [m["role"] for m in merged] == ["user", "assistant", "tool", "tool", "assistant"]


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (lambda c: c[:3] + c[4:], "before tool call\\(s\\) b were answered"),
        (lambda c: c[:3], "b of the last assistant message are not answered"),
        (lambda c: [c[0], c[2]], "which the assistant message before it did not make"),
        (
            lambda c: [c[0], {"role": "user", "content": "x", "tool_calls": []}],
            "only an assistant",
        ),
        (lambda c: [c[0], c[1], {"role": "tool", "content": "x"}], "without a 'tool_call_id'"),
    ],
)
def test_unanswered_or_stray_tool_messages_are_refused(cut: Any, words: str) -> None:
    with pytest.raises(LlmRequestError, match=words):
        normalize_messages(cut(_conversation()))


class _NoTools(BaseLlm):
    provider = "no-tools"
    default_model = "m"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def _generate(self, client: Any, messages: list[Message], params: CallParams) -> Any:
        self.sent += 1
        return LlmResponse("x", params.model)


def test_a_provider_without_tools_refuses_them_before_sending() -> None:
    llm = _NoTools()
    with pytest.raises(LlmConfigurationError, match="cannot call tools"):
        asyncio.run(llm.generate_async("hi", tools=[Tool.from_function(lookup)]))
    assert llm.sent == 0
    assert asyncio.run(llm.generate_async("hi", tools=[])).text == "x"


def test_fake_llm_scripts_tool_calls_and_checks_they_were_offered() -> None:
    tool = Tool.from_function(lookup)
    call = ToolCall("c1", "lookup", {"city": "Oslo"})
    llm = FakeLlm([[call], "done"])
    first = asyncio.run(llm.generate_async("weather?", tools=[tool]))
    assert first.tool_calls == [call]
    assert first.finish_reason == "tool_calls"
    assert first.to_dict()["tool_calls"] == [call.to_dict()]
    assert llm.calls[0].params.tools == (tool,)
    history = ["weather?", {"role": "assistant", "content": "", "tool_calls": [call]}]
    second = asyncio.run(
        llm.generate_async(
            [
                *history[:0],
                {"role": "user", "content": "weather?"},
                history[1],
                tool_message(call, "cold"),
            ],
            tools=[tool],
        )
    )
    assert second.text == "done"
    assert second.tool_calls == []
    stray = FakeLlm([[ToolCall("c2", "other", {})]])
    with pytest.raises(LlmRequestError, match="not given"):
        asyncio.run(stray.generate_async("x", tools=[tool]))

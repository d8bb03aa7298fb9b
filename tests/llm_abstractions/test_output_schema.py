"""Typed outputs (``generate_async(..., output_schema=...)``) on ``FakeLlm``: the three modes,
the re-ask with the errors, the bound, and what is refused before anything is sent."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from coditect_core.errors import (
    LlmConfigurationError,
    LlmOutputValidationError,
    LlmRequestError,
    LlmResponseError,
)
from coditect_core.llm_abstractions import FakeLlm, LlmResponse, ToolCall, WrapperLlm
from coditect_core.llm_abstractions.messages import Messages
from coditect_core.llm_abstractions.output import OutputSchema, extract_json

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    "required": ["name", "count"],
}
GOOD = {"name": "apples", "count": 3}


class Fruit(BaseModel):
    name: str
    count: int


class PlainFake(FakeLlm):
    """A provider with neither native output nor tools: only ``prompted``."""

    native_output: ClassVar[bool] = False
    supports_tools: ClassVar[bool] = False


class CountingWrapper(WrapperLlm):
    """Counts the requests that pass through it (as limits, pricing, attempts would see them)."""

    def __init__(self, wrapped: FakeLlm) -> None:
        super().__init__(wrapped)
        self.requests = 0
        self.invalid: list[tuple[int, list[str]]] = []

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        self.requests += 1
        return await super().request_async(messages, deadline=deadline, **kwargs)

    async def output_invalid(self, error: LlmOutputValidationError, tries: int) -> None:
        self.invalid.append((tries, error.errors))


async def test_native_mode_is_auto_on_fake_and_sends_the_schema() -> None:
    llm = FakeLlm([json.dumps(GOOD)])
    response = await llm.generate_async("count the apples", output_schema=SCHEMA)
    assert response.value == GOOD
    assert response.output_mode == "native"
    assert response.output_tries == 1
    sent = llm.calls[0].params
    assert sent.output == {"name": "output", "schema": SCHEMA}
    assert not sent.tools
    assert response.to_dict()["value"] == GOOD
    assert response.to_dict()["output_mode"] == "native"


async def test_a_pydantic_model_gives_an_instance() -> None:
    llm = FakeLlm([json.dumps(GOOD)])
    response = await llm.generate_async("count", output_schema=Fruit)
    assert isinstance(response.value, Fruit)
    assert response.value == Fruit(name="apples", count=3)
    assert llm.calls[0].params.output is not None
    assert llm.calls[0].params.output["name"] == "Fruit"
    assert llm.calls[0].params.output["schema"]["required"] == ["name", "count"]
    assert response.to_dict()["value"] == GOOD


async def test_prompted_mode_puts_the_schema_in_the_system_prompt_and_reads_fences() -> None:
    llm = FakeLlm([f"Here it is:\n```json\n{json.dumps(GOOD)}\n```\nDone."])
    response = await llm.generate_async(
        [{"role": "system", "content": "You count."}, {"role": "user", "content": "count"}],
        output_schema=SCHEMA,
        output_mode="prompted",
    )
    assert response.value == GOOD
    assert response.output_mode == "prompted"
    sent = llm.calls[0]
    assert sent.params.output is None
    system = sent.messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You count.")
    assert json.dumps(SCHEMA) in system["content"]


async def test_tool_mode_forces_one_tool_whose_parameters_are_the_schema() -> None:
    llm = FakeLlm([[ToolCall("call-1", "final_result", GOOD)]])
    response = await llm.generate_async("count", output_schema=SCHEMA, output_mode="tool")
    assert response.value == GOOD
    assert response.output_mode == "tool"
    params = llm.calls[0].params
    assert [tool.name for tool in params.tools] == ["final_result"]
    assert dict(params.tools[0].parameters) == SCHEMA
    assert params.tool_choice == "final_result"
    assert params.output is None


async def test_tool_mode_wraps_a_schema_that_is_not_an_object() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    llm = FakeLlm([[ToolCall("call-1", "final_result", {"value": [1, 2]})]])
    response = await llm.generate_async("list", output_schema=schema, output_mode="tool")
    assert response.value == [1, 2]
    assert llm.calls[0].params.tools[0].parameters["properties"]["value"] == schema


async def test_an_invalid_answer_is_re_asked_with_its_errors_and_fixed() -> None:
    bad = json.dumps({"name": "apples", "count": -1})
    llm = FakeLlm([bad, json.dumps(GOOD)])
    wrapper = CountingWrapper(llm)
    response = await wrapper.generate_async("count", output_schema=SCHEMA)
    assert response.value == GOOD
    assert response.output_tries == 2
    assert wrapper.requests == 2  # each try is a request through the wrappers
    assert [tries for tries, _ in wrapper.invalid] == [1]
    second = llm.calls[1].messages
    assert second[-2] == {"role": "assistant", "content": bad}
    assert second[-1]["role"] == "user"
    assert "$.count" in second[-1]["content"]
    assert "-1 is less than the minimum of 0" in second[-1]["content"]


async def test_text_that_is_not_json_is_re_asked() -> None:
    llm = FakeLlm(["I think there are three apples.", json.dumps(GOOD)])
    response = await llm.generate_async("count", output_schema=SCHEMA, output_mode="prompted")
    assert response.value == GOOD
    assert "not JSON" in llm.calls[1].messages[-1]["content"]


async def test_tool_mode_re_asks_through_a_tool_result_with_the_errors() -> None:
    llm = FakeLlm(
        [
            [ToolCall("call-1", "final_result", {"name": "apples"})],
            [ToolCall("call-2", "final_result", GOOD)],
        ]
    )
    response = await llm.generate_async("count", output_schema=SCHEMA, output_mode="tool")
    assert response.value == GOOD
    second = llm.calls[1].messages
    assert second[-2]["role"] == "assistant"
    assert [c.id for c in second[-2]["tool_calls"]] == ["call-1"]
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "call-1"
    assert second[-1]["is_error"] is True
    assert "'count' is a required property" in second[-1]["content"]


async def test_a_model_that_never_complies_fails_after_the_bound() -> None:
    llm = FakeLlm(default=lambda messages: '{"name": 7}')
    with pytest.raises(LlmOutputValidationError) as caught:
        await llm.generate_async("count", output_schema=SCHEMA, output_retries=2)
    error = caught.value
    assert len(llm.calls) == 3  # the first try and two re-asks
    assert error.tries == 3
    assert error.reply == '{"name": 7}'
    assert any("$.name: 7 is not of type 'string'" in e for e in error.errors)
    assert any("'count' is a required property" in e for e in error.errors)
    assert "after 3 tries" in str(error)
    assert error.retryable is False
    assert isinstance(error, LlmResponseError)


async def test_output_retries_zero_is_one_try_and_retryable_errors_are_not_re_asks() -> None:
    llm = FakeLlm(default=lambda messages: "nope")
    with pytest.raises(LlmOutputValidationError):
        await llm.generate_async("count", output_schema=SCHEMA, output_retries=0)
    assert len(llm.calls) == 1


async def test_refused_before_sending() -> None:
    llm = FakeLlm()
    with pytest.raises(LlmRequestError, match="not a valid JSON Schema"):
        await llm.generate_async("x", output_schema={"type": "no-such-type"})
    with pytest.raises(LlmRequestError, match=r"JSON Schema \(a dict\) or a pydantic model"):
        await llm.generate_async("x", output_schema=42)
    with pytest.raises(LlmRequestError, match="unknown output_mode 'best'"):
        await llm.generate_async("x", output_schema=SCHEMA, output_mode="best")
    with pytest.raises(LlmRequestError, match="output_retries"):
        await llm.generate_async("x", output_schema=SCHEMA, output_retries=-1)
    with pytest.raises(LlmRequestError, match="stream cannot have an output_schema"):
        llm.stream_content_async("x", output_schema=SCHEMA)
    assert llm.calls == []


async def test_auto_picks_what_the_provider_supports_and_refuses_what_it_lacks() -> None:
    llm = PlainFake([json.dumps(GOOD)])
    assert [m.value for m in llm.output_modes()] == ["prompted"]
    response = await llm.generate_async("count", output_schema=SCHEMA)
    assert response.output_mode == "prompted"
    with pytest.raises(LlmConfigurationError, match="cannot produce output_mode 'native'"):
        await llm.generate_async("count", output_schema=SCHEMA, output_mode="native")
    assert [m.value for m in FakeLlm().output_modes()] == ["native", "tool", "prompted"]
    assert CountingWrapper(FakeLlm()).output_modes() == FakeLlm().output_modes()


def test_extract_json() -> None:
    assert extract_json(' {"a": 1} ') == {"a": 1}
    assert extract_json('Sure!\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert extract_json('The answer is {"a": 1} as asked.') == {"a": 1}
    with pytest.raises(ValueError, match="empty"):
        extract_json("  ")
    with pytest.raises(ValueError, match="not JSON"):
        extract_json("no json here")


def test_output_schema_validates_with_paths() -> None:
    spec = OutputSchema.of(
        {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    )
    value, errors = spec.validate({"items": [1, "two"]})
    assert value is None
    assert errors == ["$.items[1]: 'two' is not of type 'integer'"]
    assert OutputSchema.of(Fruit).validate({"name": "x", "count": "many"})[1] == [
        "$.count: Input should be a valid integer, unable to parse string as an integer"
    ]

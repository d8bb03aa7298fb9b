"""A ``RayLlm`` (no cluster needed: its sending is replaced) carries tool calling through: it
takes tools when the agent's class does, and a streamed call sends them and returns the calls."""

from __future__ import annotations

from typing import Any

from coditect_core.llm_abstractions import FakeLlm, Tool, ToolCall
from coditect_core.llm_abstractions.command import CommandLlm
from coditect_core.llm_abstractions.spec import LlmSpec
from coditect_core.orchestration.runners.ray import RayLlm, RayRunner

WEATHER = Tool("weather", "The weather in a city.")
CALL = ToolCall("c1", "weather", {"city": "Oslo"})


async def test_a_streamed_call_sends_the_tools_and_returns_the_calls() -> None:
    worker = FakeLlm([[CALL]])
    sent: list[dict[str, Any]] = []

    async def send(llm: RayLlm, messages: Any, kwargs: dict[str, Any]) -> Any:
        sent.append(kwargs)
        return await worker.request_async(messages, **kwargs)

    runner = RayRunner()
    runner.send = send  # type: ignore[method-assign]
    llm = RayLlm(runner, "a", LlmSpec(FakeLlm), on_actor=False, local=FakeLlm())
    assert llm.supports_tools is True
    stream = llm.stream_content_async("w?", tools=[WEATHER], tool_choice="weather")
    assert "".join([d async for d in stream]) == ""
    assert stream.response is not None
    assert stream.response.tool_calls == [CALL]
    assert sent[0]["tools"] == [WEATHER]
    assert sent[0]["tool_choice"] == "weather"


def test_it_takes_tools_only_when_the_agents_class_does() -> None:
    llm = RayLlm(RayRunner(), "c", LlmSpec(CommandLlm), on_actor=False, local=None)
    assert llm.supports_tools is False

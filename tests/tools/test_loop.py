"""The agent loop (tools/loop.py) with FakeLlm: calls run and answered in order, a tool's failure
(raising, bad arguments, unknown name, timeout, a dead source) is an error result the model sees,
the bounds raise AgentLoopError, and a cancelled loop leaves a conversation every provider takes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from coditect_core.errors import AgentLoopError, ToolError, ToolsetError
from coditect_core.llm_abstractions.base_llm import LlmResponse, Usage
from coditect_core.llm_abstractions.messages import Message, normalize_messages
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import Tool, ToolCall
from coditect_core.tools import FunctionToolset, ToolResult, Toolset
from coditect_core.tools.loop import (
    AgentLoop,
    LoopHooks,
    LoopLimits,
    LoopResume,
    ToolBox,
    ToolCallRecord,
    pending_calls,
)


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


async def nap(seconds: float) -> str:
    """Sleep a while."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


TOOLS = FunctionToolset([add, explode, nap])


def call(id: str, name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


def tool_results(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m["role"] == "tool"]


async def test_a_tool_is_called_then_the_model_answers() -> None:
    llm = FakeLlm([[call("c1", "add", a=2, b=3)], "the sum is 5"])
    records: list[ToolCallRecord] = []
    result = await AgentLoop(llm, ToolBox([TOOLS]), hooks=LoopHooks(after_tool=records.append)).run(
        [{"role": "user", "content": "add 2 and 3"}]
    )
    assert result.response.text == "the sum is 5"
    assert (result.turns, result.tool_calls) == (2, 1)
    # the second request carried the call and its result; the tools were offered each time
    second = llm.calls[1].messages
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0].id == "c1"
    assert second[-1] == {
        "role": "tool",
        "content": "5",
        "tool_call_id": "c1",
        "name": "add",
        "is_error": False,
    }
    assert [r.call.name for r in records] == ["add"]
    assert records[0].toolset == "functions"
    assert records[0].error is None
    normalize_messages(result.messages)  # valid for every provider


async def test_two_parallel_calls_run_at_once_and_are_answered_in_call_order() -> None:
    llm = FakeLlm([[call("slow", "nap", seconds=0.3), call("fast", "nap", seconds=0.0)], "ok"])
    started = asyncio.get_running_loop().time()
    result = await AgentLoop(llm, ToolBox([TOOLS])).run("go")
    elapsed = asyncio.get_running_loop().time() - started
    answers = tool_results(result.messages)
    assert [m["tool_call_id"] for m in answers] == ["slow", "fast"]
    assert [m["content"] for m in answers] == ["slept 0.3", "slept 0.0"]
    assert elapsed < 0.6  # at once, not one after the other (0.3 + 0.3 would be serial)


async def test_parallel_calls_are_capped() -> None:
    running = 0
    peak = 0

    async def busy(n: int) -> str:
        """Hold a slot."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return str(n)

    llm = FakeLlm([[call(f"c{i}", "busy", n=i) for i in range(5)], "done"])
    limits = LoopLimits(max_parallel_tools=2)
    result = await AgentLoop(llm, ToolBox([FunctionToolset([busy])]), limits=limits).run("go")
    assert peak == 2
    assert [m["content"] for m in tool_results(result.messages)] == ["0", "1", "2", "3", "4"]


async def test_a_tool_that_raises_is_an_error_result_the_model_sees() -> None:
    llm = FakeLlm([[call("c1", "explode", reason="disk on fire")], "sorry, it failed"])
    result = await AgentLoop(llm, ToolBox([TOOLS])).run("go")
    (answer,) = tool_results(result.messages)
    assert answer["is_error"] is True
    assert "RuntimeError: disk on fire" in answer["content"]
    assert result.response.text == "sorry, it failed"


async def test_bad_and_undecodable_arguments_are_error_results() -> None:
    undecodable = ToolCall(id="c2", name="add", invalid_arguments='{"a": 1,')
    llm = FakeLlm([[call("c1", "add", a="two", b=1), undecodable], "fixed"])
    result = await AgentLoop(llm, ToolBox([TOOLS])).run("go")
    bad, broken = tool_results(result.messages)
    assert bad["is_error"]
    assert "bad arguments" in bad["content"]
    assert "a:" in bad["content"]
    assert broken["is_error"]
    assert "not a JSON object" in broken["content"]
    assert result.response.text == "fixed"


async def test_an_unknown_tool_is_an_error_result_naming_the_tools() -> None:
    asked = LlmResponse(
        "", "fake-model", Usage(1, 1, 2), "tool_calls", tool_calls=[call("c1", "rm")]
    )
    llm = FakeLlm([asked, "ok"])
    result = await AgentLoop(llm, ToolBox([TOOLS])).run("go")
    (answer,) = tool_results(result.messages)
    assert answer["is_error"]
    assert "unknown tool 'rm'" in answer["content"]
    assert "add, explode, nap" in answer["content"]


async def test_a_tool_past_its_timeout_is_an_error_result() -> None:
    llm = FakeLlm([[call("c1", "nap", seconds=5)], "gave up"])
    limits = LoopLimits(tool_timeout=0.1)
    started = asyncio.get_running_loop().time()
    result = await AgentLoop(llm, ToolBox([TOOLS]), limits=limits).run("go")
    assert asyncio.get_running_loop().time() - started < 2
    (answer,) = tool_results(result.messages)
    assert answer["is_error"]
    assert "timed out after 0.1 s" in answer["content"]


class DeadServer(Toolset):
    name = "weather"

    def tools(self) -> list[Tool]:
        return [Tool("forecast")]

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        raise ToolsetError("the server exited (code 1)", toolset=self.name, tool=name)


async def test_a_dead_tool_source_is_an_error_result_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = FakeLlm([[call("c1", "forecast")], "no weather today"])
    result = await AgentLoop(llm, ToolBox([DeadServer()])).run("go")
    (answer,) = tool_results(result.messages)
    assert answer["is_error"]
    assert "'weather'" in answer["content"]
    assert "exited" in answer["content"]
    assert any("weather" in r.getMessage() for r in caplog.records)


async def test_max_turns_reached_raises_and_leaves_a_valid_conversation() -> None:
    llm = FakeLlm([[call(f"c{i}", "add", a=i, b=1)] for i in range(10)])
    stored: list[list[Message]] = []
    hooks = LoopHooks(on_conversation=lambda m: stored.append(list(m)))
    loop = AgentLoop(llm, ToolBox([TOOLS]), limits=LoopLimits(max_turns=3), hooks=hooks)
    with pytest.raises(AgentLoopError, match=r"max_turns \(3\)") as caught:
        await loop.run("go")
    assert caught.value.limit == "max_turns"
    assert len(llm.calls) == 3
    last = stored[-1]
    assert pending_calls(last) == []
    assert "not run" in tool_results(last)[-1]["content"]
    normalize_messages(last)


async def test_max_tool_calls_reached_raises_after_the_calls_that_fit() -> None:
    llm = FakeLlm(
        [[call("c1", "add", a=1, b=1)], [call(f"d{i}", "add", a=i, b=0) for i in range(3)]]
    )
    stored: list[list[Message]] = []
    hooks = LoopHooks(on_conversation=lambda m: stored.append(list(m)))
    loop = AgentLoop(llm, ToolBox([TOOLS]), limits=LoopLimits(max_tool_calls=2), hooks=hooks)
    with pytest.raises(AgentLoopError, match=r"max_tool_calls \(2\)") as caught:
        await loop.run("go")
    assert caught.value.limit == "max_tool_calls"
    answers = tool_results(stored[-1])
    assert [m["content"] for m in answers[:2]] == ["2", "0"]  # c1, then d0 fit
    assert all(m["is_error"] and "not run" in m["content"] for m in answers[2:])
    assert len(answers) == 4
    normalize_messages(stored[-1])


async def test_cancelled_mid_tools_answers_every_call_before_recording() -> None:
    gate = asyncio.Event()

    async def quick() -> str:
        """Done at once."""
        return "quick done"

    async def stuck() -> str:
        """Never done."""
        gate.set()
        await asyncio.sleep(60)
        return "never"

    llm = FakeLlm([[call("q", "quick"), call("s", "stuck")], "unreachable"])
    stored: list[list[Message]] = []
    hooks = LoopHooks(on_conversation=lambda m: stored.append(list(m)))
    loop = AgentLoop(llm, ToolBox([FunctionToolset([quick, stuck])]), hooks=hooks)
    task = asyncio.create_task(loop.run("go"))
    await gate.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    conversation = stored[-1]
    answers = tool_results(conversation)
    assert [(m["tool_call_id"], m["content"]) for m in answers] == [
        ("q", "quick done"),
        ("s", "cancelled: the tool call was stopped before it finished"),
    ]
    assert answers[1]["is_error"]
    normalize_messages(conversation)  # valid: every call answered


async def test_hooks_see_each_turn_and_may_stop_before_a_model_call() -> None:
    class Budget(Exception):
        pass

    turns: list[int] = []

    def before_model(messages: list[Message], turn: int) -> None:
        if turn == 2:
            raise Budget("the next call would pass the budget")

    async def after_turn(turn: int, response: LlmResponse, messages: list[Message]) -> None:
        turns.append(turn)

    llm = FakeLlm([[call("c1", "add", a=1, b=2)], "never asked"])
    hooks = LoopHooks(before_model=before_model, after_turn=after_turn)
    with pytest.raises(Budget):
        await AgentLoop(llm, ToolBox([TOOLS]), hooks=hooks).run("go")
    assert turns == [1]
    assert len(llm.calls) == 1


async def test_on_answer_may_send_a_message_and_go_on() -> None:
    sent: list[str] = []

    def on_answer(response: LlmResponse, messages: list[Message]) -> str | None:
        if not sent:
            sent.append("checks failed: try again")
            return sent[0]
        return None

    llm = FakeLlm(["first try", "second try"])
    result = await AgentLoop(llm, ToolBox([TOOLS]), hooks=LoopHooks(on_answer=on_answer)).run("go")
    assert result.response.text == "second try"
    assert llm.calls[1].messages[-1] == {"role": "user", "content": "checks failed: try again"}


async def test_before_tool_may_answer_a_call_without_running_it() -> None:
    def before_tool(turn: int, c: ToolCall) -> ToolResult | None:
        return ToolResult.error("refused by a person") if c.name == "explode" else None

    llm = FakeLlm([[call("c1", "explode", reason="x"), call("c2", "add", a=1, b=1)], "ok"])
    records: list[ToolCallRecord] = []
    hooks = LoopHooks(before_tool=before_tool, after_tool=records.append)
    result = await AgentLoop(llm, ToolBox([TOOLS]), hooks=hooks).run("go")
    refused, added = tool_results(result.messages)
    assert refused["content"] == "refused by a person"
    assert added["content"] == "2"
    assert {r.call.id: r.toolset for r in records} == {"c1": None, "c2": "functions"}


async def test_resume_runs_only_the_calls_without_a_recorded_result() -> None:
    ran: list[int] = []

    def count(n: int) -> str:
        """Count it."""
        ran.append(n)
        return f"counted {n}"

    conversation: list[Message] = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call("a", "count", n=1), call("b", "count", n=2)],
        },
    ]
    resume = LoopResume(
        conversation, {"a": ToolResult("counted 1 (recorded)")}, turns=1, tool_calls=1
    )
    llm = FakeLlm(["all counted"])
    result = await AgentLoop(llm, ToolBox([FunctionToolset([count])])).run(resume=resume)
    assert ran == [2]  # the recorded call is not run again
    assert [m["content"] for m in tool_results(result.messages)] == [
        "counted 1 (recorded)",
        "counted 2",
    ]
    assert (result.turns, result.tool_calls) == (2, 2)
    assert len(llm.calls) == 1


def test_two_sources_with_one_tool_name_are_refused() -> None:
    box = ToolBox([TOOLS, FunctionToolset([add], name="more")])
    with pytest.raises(ToolError, match="'functions' and 'more'"):
        box.tools()

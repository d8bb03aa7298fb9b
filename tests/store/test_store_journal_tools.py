"""The call journal with tool calling: the tools and the messages' calls and results are in a
request's key; an answer's tool calls are stored and a cached answer asks for them again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coditect_core.llm_abstractions import FakeLlm, Tool, ToolCall, tool_message
from coditect_core.llm_abstractions.messages import Messages
from coditect_core.orchestration.journal import (
    JournaledLlm,
    JournalRequest,
    journal_request,
)
from coditect_core.store import StateStore

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = Tool("weather", "The weather in a city.", SCHEMA)
CALL = ToolCall("c1", "weather", {"city": "Oslo"})


def key(messages: Messages, **options: Any) -> str:
    return journal_request("openai-gpt", "m", None, {"temperature": 0}, messages, options).key


def conversation(
    call: ToolCall = CALL, result: str = "sunny", *, is_error: bool = False
) -> list[Any]:
    return [
        {"role": "user", "content": "w?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        tool_message(call, result, is_error=is_error),
    ]


def test_the_tools_declarations_are_in_the_key() -> None:
    base = key("w?", tools=[WEATHER])
    assert key("w?", tools=[WEATHER]) == base
    # the same schema written in another key order is the same request
    reordered = Tool("weather", WEATHER.description, dict(reversed(list(SCHEMA.items()))))
    assert key("w?", tools=[reordered]) == base
    for other in (
        key("w?"),
        key("w?", tools=[Tool("weather", "Another description.", SCHEMA)]),
        key("w?", tools=[Tool("weather", WEATHER.description, {**SCHEMA, "required": []})]),
        key("w?", tools=[Tool("weather", WEATHER.description, SCHEMA, strict=True)]),
        key("w?", tools=[WEATHER], tool_choice="weather"),
    ):
        assert other != base


def test_the_messages_calls_and_results_are_in_the_key() -> None:
    base = key(conversation(), tools=[WEATHER])
    assert key(conversation(), tools=[WEATHER]) == base
    for other in (
        key(conversation(ToolCall("c1", "weather", {"city": "Lima"})), tools=[WEATHER]),
        key(conversation(ToolCall("c2", "weather", {"city": "Oslo"})), tools=[WEATHER]),
        key(conversation(ToolCall("c1", "weather", {}, "{bad")), tools=[WEATHER]),
        key(conversation(result="rain"), tools=[WEATHER]),
        key(conversation(is_error=True), tools=[WEATHER]),
    ):
        assert other != base


def test_a_plain_message_hashes_as_before_tool_calling() -> None:
    # Journals recorded before tool calling still answer: a plain message's hash is unchanged.
    import hashlib

    request = journal_request("p", "m", None, {}, [{"role": "user", "content": "hi"}])
    assert request.chain[0][2] == hashlib.sha256(b'["user","hi"]').hexdigest()


async def test_a_cached_answer_with_tool_calls_asks_for_them_again(tmp_path: Path) -> None:
    calls = [CALL, ToolCall("c2", "weather", {}, invalid_arguments="{oops")]
    llm = FakeLlm([calls])
    with StateStore.open(tmp_path / "state.db") as store:

        async def ask(tools: list[Tool], *, use_cache: bool) -> Any:
            info = await store.begin_run("proj")
            journal = await store.run_journal(info.run_id).open()

            def request(messages: Messages, options: Mapping[str, Any]) -> JournalRequest:
                return journal_request(llm.provider, llm.model, None, {}, messages, options)

            journaled = JournaledLlm(
                llm, journal, request=request, task_id="T", use_cache=use_cache
            )
            response = await journaled.request_async("w?", tools=tools)
            await store.flush()
            await store.finish_run(info.run_id, "succeeded")
            return response

        first = await ask([WEATHER], use_cache=False)
        assert first.tool_calls == calls
        again = await ask([WEATHER], use_cache=True)
        assert len(llm.calls) == 1  # the provider was not asked again
        assert again.cached
        assert again.tool_calls == calls
        assert again.finish_reason == "tool_calls"
        other = await ask([Tool("weather", "Changed.", SCHEMA)], use_cache=True)
        assert not other.cached  # other tools: another request
        assert len(llm.calls) == 2

"""The agent loop over each real provider class against the wire-level stub (the real SDKs): a
turn of two parallel calls (one tool fails, one gets bad arguments), both answered in the next
request in that vendor's shape, then the answer. Asserted on what the stub received."""

from __future__ import annotations

from typing import Any

import pytest
from provider_contract import FAST, KEY
from stub_server import StubServer, reply

from coditect_core.llm_abstractions import BaseLlm, Claude, Gemini, Gpt
from coditect_core.tools.base import FunctionToolset
from coditect_core.tools.loop import AgentLoop, LoopLimits, ToolBox


def lookup(key: str) -> str:
    """Look a key up."""
    if key == "missing":
        raise KeyError(key)
    return f"value of {key}"


CALLS = [
    {"id": "call_1", "name": "lookup", "arguments": {"key": "missing"}},
    {"id": "call_2", "name": "lookup", "arguments": {"nope": 1}},
]


def make(cls: type[BaseLlm], stub: StubServer) -> BaseLlm:
    base = {Gpt: stub.openai_url, Claude: stub.url, Gemini: stub.url + "/"}[cls]
    return cls(api_key=KEY, base_url=base, retry=FAST)


def results_sent(cls: type[BaseLlm], body: dict[str, Any]) -> list[tuple[str, bool]]:
    """(result text, is an error) of each tool result in a request, in the vendor's shape."""
    if cls is Gpt:
        return [
            (m["content"].removeprefix("ERROR: "), m["content"].startswith("ERROR: "))
            for m in body["messages"]
            if m["role"] == "tool"
        ]
    if cls is Claude:
        last = body["messages"][-1]
        assert last["role"] == "user"
        return [(b.get("content", ""), b.get("is_error", False)) for b in last["content"]]
    last = body["contents"][-1]
    assert last["role"] == "user"
    out = []
    for part in last["parts"]:
        response = part["functionResponse"]["response"]
        out.append((response.get("result", response.get("error")), "error" in response))
    return out


@pytest.mark.parametrize("cls", [Gpt, Claude, Gemini])
async def test_a_loop_runs_parallel_calls_and_answers_both_in_the_vendors_shape(
    stub_server: StubServer, cls: type[BaseLlm]
) -> None:
    stub_server.script(reply(tool_calls=CALLS), reply("done"))
    async with make(cls, stub_server) as llm:
        loop = AgentLoop(llm, ToolBox([FunctionToolset([lookup])]), limits=LoopLimits())
        result = await loop.run("Look up two keys.")
    assert result.response.text == "done"
    assert (result.turns, result.tool_calls) == (2, 2)
    assert stub_server.request_count == 2
    sent = results_sent(cls, stub_server.requests[-1].body)
    assert len(sent) == 2
    assert all(is_error for _, is_error in sent)  # a tool that raised, arguments that do not fit
    assert "missing" in sent[0][0]
    assert "nope" in sent[1][0]

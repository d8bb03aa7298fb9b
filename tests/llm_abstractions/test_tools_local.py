"""Providers without tool calling (``LocalLlm``, ``CommandLlm``, legacy scripts) refuse a call
with tools before anything runs, saying why; wrappers report what the LLM they wrap can do."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect_core.errors import LlmConfigurationError
from coditect_core.llm_abstractions import (
    NO_RETRY,
    AgentGate,
    FakeLlm,
    LimitedLlm,
    LocalLlm,
    PriceBook,
    PricedLlm,
    Tool,
    local,
)
from coditect_core.llm_abstractions.command import CommandLlm
from coditect_core.orchestration.script_protocol import ScriptLlm

WEATHER = Tool("weather", "The weather in a city.")


async def test_local_llm_refuses_tools_before_loading_the_model() -> None:
    llm = LocalLlm(n_ctx=96, retry=NO_RETRY)  # a load no other test makes
    key = local._cache_key(llm.model, {"n_ctx": 96})
    with pytest.raises(LlmConfigurationError, match=r"cannot call tools \(llama-cpp-python"):
        await llm.generate_async("w?", tools=[WEATHER])
    with pytest.raises(LlmConfigurationError, match="cannot call tools"):
        llm.stream_content_async("w?", tools=[WEATHER], tool_choice="weather")
    assert key not in local._models


async def test_a_command_refuses_tools_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = ["sh", "-c", f"touch {marker}; cat"]
    for llm in (CommandLlm(argv, retry=NO_RETRY), ScriptLlm(argv, retry=NO_RETRY)):
        with pytest.raises(LlmConfigurationError, match="cannot call tools"):
            await llm.generate_async("w?", tools=[WEATHER])
    assert not marker.exists()


def test_wrappers_report_whether_the_wrapped_llm_takes_tools() -> None:
    assert PricedLlm(LimitedLlm(FakeLlm(), AgentGate()), PriceBook()).supports_tools is True
    assert LimitedLlm(CommandLlm(["cat"]), AgentGate()).supports_tools is False

"""What ``run`` prints off a terminal when an agent loop's turn calls tools: a turn line (not a
'retry after: None' line), the tool names shown inert."""

from __future__ import annotations

import io

from rich.console import Console

from coditect_core.cli.live import PlainView
from coditect_core.orchestration import AgentTask, ExecutionResult, ExecutionStatus


async def test_a_turn_that_calls_tools_is_said_as_a_turn() -> None:
    buffer = io.StringIO()
    view = PlainView(1, Console(file=buffer, width=200))
    ended = ExecutionResult(
        "T1",
        agent="bot",
        status=ExecutionStatus.SUCCESS,
        metadata={"turn": 2, "tool_calls": [{"id": "c1", "name": "read\x1b[2Jfile"}]},
    )
    await view.attempt_started(AgentTask("T1", "t", "d"), ended, agent="bot")
    text = buffer.getvalue()
    assert "turn      T1 on bot: turn 2 calls read" in text
    assert "retry" not in text
    assert "\x1b[2J" not in text  # a name from the model is shown inert

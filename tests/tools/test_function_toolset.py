"""FunctionToolset: typed functions as tools; bad arguments and a raising function are error
results the model can react to, not failures; long results are cut with a marker."""

from __future__ import annotations

import asyncio

from coditect_core.tools import FunctionToolset, ToolResult, truncate_text


def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


async def shout(text: str) -> str:
    """Shout it."""
    return text.upper()


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


def big() -> str:
    """A long answer."""
    return "x" * 500


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_tools_are_declared_and_called() -> None:
    toolset = FunctionToolset([add, shout, explode, big], max_result_chars=100)
    assert [t.name for t in toolset.tools()] == ["add", "shout", "explode", "big"]
    assert run(toolset.call("add", {"a": 1})) == ToolResult("3")
    assert run(toolset.call("add", {"a": "4", "b": 1})) == ToolResult("5")  # converted
    assert run(toolset.call("shout", {"text": "hi"})) == ToolResult("HI")


def test_failures_are_error_results() -> None:
    toolset = FunctionToolset([add, explode, big], max_result_chars=100)
    missing = run(toolset.call("add", {}))
    assert missing.is_error
    assert "a: Field required" in missing.content
    wrong = run(toolset.call("add", {"a": "not a number"}))
    assert wrong.is_error
    assert "a:" in wrong.content
    extra = run(toolset.call("add", {"a": 1, "c": 3}))
    assert extra.is_error
    assert "c: Extra inputs are not permitted" in extra.content
    raised = run(toolset.call("explode", {"reason": "kaboom"}))
    assert raised == ToolResult("explode failed: RuntimeError: kaboom", is_error=True)
    assert run(toolset.call("nope", {})).is_error
    cut = run(toolset.call("big", {}))
    assert cut.truncated
    assert cut.content.startswith("x" * 100)
    assert "400 more" in cut.content


def test_truncate_text_marks_what_it_cut() -> None:
    assert truncate_text("abc", 3) == ("abc", False)
    text, cut = truncate_text("abcdef", 3)
    assert cut
    assert text.startswith("abc\n[... truncated: 3 more characters")

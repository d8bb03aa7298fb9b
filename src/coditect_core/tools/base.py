"""The contract of a tool source: :class:`Toolset` (tools to offer, calls to run), what a call
gives back (:class:`ToolResult`), and :class:`FunctionToolset`, typed Python functions as tools.

A toolset is opened and closed by the one asyncio task that uses it (``async with toolset:``):
an MCP session must be (PITFALLS: "Attempted to exit cancel scope in a different task").
``call`` answers a tool's own failure (an exception, bad arguments) with an error
:class:`ToolResult` the model can react to; it raises :class:`~coditect_core.errors.ToolsetError`
only when the source as a whole is gone (a dead server).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from ..errors import ToolArgumentsError
from ..llm_abstractions.tool_types import Tool, arguments_model

__all__ = ["DEFAULT_MAX_RESULT_CHARS", "FunctionToolset", "ToolResult", "Toolset", "truncate_text"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESULT_CHARS = 20_000
"""What a tool result may hold before it is cut (a model's context is not a log file)."""


def truncate_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters with a clear marker saying how much was left out;
    ``(text, False)`` when it fits."""
    if len(text) <= limit:
        return text, False
    dropped = len(text) - limit
    return f"{text[:limit]}\n[... truncated: {dropped} more characters not shown]", True


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call gave back: text for the model, whether it is an error, and whether it
    was cut (:func:`truncate_text`)."""

    content: str
    is_error: bool = False
    truncated: bool = False

    @classmethod
    def error(cls, message: str) -> ToolResult:
        """An error result: the model is told ``message`` and may try again."""
        return cls(content=message, is_error=True)


class Toolset(ABC):
    """A source of tools: the built-in file tools, Python functions, one MCP server.

    ``name`` says which source it is in errors and records. :meth:`open` and :meth:`aclose` (or
    ``async with``) must run in the same asyncio task.
    """

    name: str = "tools"

    async def open(self) -> None:
        """Start what the tools need (a server's session). Nothing by default."""
        return None

    async def aclose(self) -> None:
        """Stop it; safe to call twice, and after a failed :meth:`open`."""
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @abstractmethod
    def tools(self) -> list[Tool]:
        """The tools to offer a model (once open)."""

    @abstractmethod
    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run tool ``name`` with ``arguments``. A tool's failure is an error result."""


class FunctionToolset(Toolset):
    """Typed Python functions (sync or async) as tools, declared by :meth:`Tool.from_function`.

    Arguments are validated through pydantic before the call; a validation error, or an
    exception the function raises, becomes an error result naming what went wrong. A sync
    function runs in a worker thread so that it does not hold the event loop. A result that is
    not a string is sent as its ``str``.
    """

    def __init__(
        self,
        functions: Iterable[Callable[..., Any]],
        *,
        name: str = "functions",
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    ) -> None:
        self.name = name
        self.max_result_chars = max_result_chars
        self._functions: dict[str, Callable[..., Any]] = {}
        self._models: dict[str, type[Any]] = {}  # each function's arguments, built once
        self._tools: list[Tool] = []
        for function in functions:
            tool = Tool.from_function(function)
            if tool.name in self._functions:
                raise ToolArgumentsError(f"two functions are named {tool.name!r}", tool=tool.name)
            self._functions[tool.name] = function
            self._models[tool.name] = arguments_model(function, tool.name)
            self._tools.append(tool)

    def tools(self) -> list[Tool]:
        return list(self._tools)

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        function = self._functions.get(name)
        if function is None:
            return ToolResult.error(f"unknown tool {name!r}")
        try:
            bound = _validated(self._models[name], name, arguments)
        except ToolArgumentsError as error:
            return ToolResult.error(str(error))
        try:
            if inspect.iscoroutinefunction(function):
                value = await function(**bound)
            else:
                value = await asyncio.to_thread(function, **bound)
        except Exception as error:
            logger.debug("tool %s raised %s", name, type(error).__name__)
            return ToolResult.error(f"{name} failed: {type(error).__name__}: {error}")
        text = value if isinstance(value, str) else str(value)
        text, truncated = truncate_text(text, self.max_result_chars)
        return ToolResult(text, truncated=truncated)


def _validated(model: type[Any], name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` validated and converted by the function's type hints (unknown ones
    refused), as keyword arguments for it."""
    from pydantic import ValidationError

    try:
        parsed = model.model_validate(dict(arguments))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in error.errors()
        )
        raise ToolArgumentsError(f"{name}: bad arguments: {problems}", tool=name) from None
    return {field: getattr(parsed, field) for field in model.model_fields}

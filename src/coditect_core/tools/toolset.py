"""An agent's ``tools:`` list as :class:`~.base.Toolset` objects, knowing no project file.

Each entry is one of:

* a built-in tool's name (``read_file``, ``run_command``...): the groups of
  :data:`BUILTIN_TOOLS` make one toolset per group for the names the agent lists;
* a Python function by import path, ``package.module:function`` (the project's folder is
  importable): all of an agent's functions are one :class:`~.base.FunctionToolset` named
  ``python``; a module that does not import or a name that is not a function is refused with
  an error naming the entry;
* an MCP server's name, when the caller gives its factory (``mcp_servers``).

An unknown name, an entry given twice, or two sources offering one tool name are refused with a
:class:`~coditect_core.errors.ToolError` naming them. The toolsets are made, not opened: the task
that uses them opens and closes them (``async with``).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LlmRequestError, ToolError
from ..llm_abstractions.tool_types import Tool
from .base import FunctionToolset, Toolset
from .commands import COMMAND_TOOLS, CommandToolset
from .files import READ_TOOLS, WRITE_TOOLS, FileToolset

__all__ = [
    "BUILTIN_TOOLS",
    "BuiltinGroup",
    "ToolContext",
    "builtin_names",
    "check_tool_entry",
    "is_import_path",
    "resolve_toolsets",
]

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What built-in tools and Python tools need: the workspace their paths are confined to
    (a task's worktree, or the project's folder), the folder Python tools are imported from,
    the commands ``run_command`` may run (each a string like ``"python -m pytest"`` or an argv
    list) and whether it must run them without network (``require_sandbox``), the built-in
    tools whose calls wait for a person's approval (``approve``), and the MCP servers the agent
    may use (name -> a factory of a new toolset for it)."""

    workspace: Path
    import_root: Path | None = None
    allow_commands: Sequence[str | Sequence[str]] = ()
    require_sandbox: bool = False
    approve: Sequence[str] = ()
    mcp_servers: Mapping[str, Callable[[], Toolset]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuiltinGroup:
    """Built-in tools made by one toolset: their names, and how to make it for some of them."""

    names: frozenset[str]
    make: Callable[[list[str], ToolContext], Toolset]


def _file_tools(names: list[str], context: ToolContext) -> Toolset:
    return FileToolset(context.workspace, names=names, approve=context.approve)


def _command_tools(names: list[str], context: ToolContext) -> Toolset:
    if not context.allow_commands:
        raise ToolError(
            'run_command needs allow_commands: the commands it may run (e.g. ["python -m pytest"])',
            tool="run_command",
        )
    return CommandToolset(
        context.workspace,
        context.allow_commands,
        require_sandbox=context.require_sandbox,
        approve=context.approve,
    )


BUILTIN_TOOLS: list[BuiltinGroup] = [
    BuiltinGroup(frozenset((*READ_TOOLS, *WRITE_TOOLS)), _file_tools),
    BuiltinGroup(frozenset(COMMAND_TOOLS), _command_tools),
]
"""The built-in tools by group (the file tools, ``run_command``); see :func:`_builtin_groups`."""


def _builtin_groups() -> list[BuiltinGroup]:
    """:data:`BUILTIN_TOOLS`, and the groups of the built-in modules present."""
    return list(BUILTIN_TOOLS)


def is_import_path(entry: str) -> bool:
    """Whether ``entry`` is a Python tool's ``package.module:function``."""
    return bool(_IMPORT_PATH.match(entry))


def builtin_names() -> list[str]:
    """Every built-in tool's name, sorted."""
    return sorted(name for group in _builtin_groups() for name in group.names)


def check_tool_entry(entry: object) -> str | None:
    """Why ``entry`` cannot be a ``tools:`` entry (without importing anything), or ``None``."""
    if not isinstance(entry, str) or not entry.strip():
        return "a tool entry must be a non-empty string"
    if ":" in entry:
        if is_import_path(entry):
            return None
        return (
            f"{entry!r} is not an import path: write package.module:function "
            "(a Python function the project folder can import)"
        )
    if entry in builtin_names():
        return None
    known = ", ".join(builtin_names()) or "none yet"
    return (
        f"unknown tool {entry!r}: give a built-in tool's name ({known}) or a Python "
        "function as package.module:function"
    )


def resolve_toolsets(entries: Sequence[str], context: ToolContext) -> list[Toolset]:
    """The toolsets that offer ``entries`` (made, not opened); MCP servers named in
    ``context.mcp_servers`` come after them."""
    seen: set[str] = set()
    functions: list[Callable[..., Any]] = []
    wanted: dict[int, list[str]] = {}
    groups = _builtin_groups()
    for entry in entries:
        problem = check_tool_entry(entry)
        if problem is not None:
            raise ToolError(problem, tool=str(entry))
        if entry in seen:
            raise ToolError(f"tool {entry!r} is listed twice", tool=entry)
        seen.add(entry)
        if is_import_path(entry):
            functions.append(_imported(entry, context.import_root))
            continue
        index = next(i for i, group in enumerate(groups) if entry in group.names)
        wanted.setdefault(index, []).append(entry)
    toolsets: list[Toolset] = [groups[i].make(names, context) for i, names in wanted.items()]
    if functions:
        toolsets.append(FunctionToolset(functions, name="python"))
    toolsets.extend(make() for make in context.mcp_servers.values())
    _check_unique(toolsets)
    return toolsets


def _check_unique(toolsets: Sequence[Toolset]) -> None:
    """Two toolsets offering one name are refused (the ones that list tools before opening;
    an MCP server's are checked once open, by :class:`~.loop.ToolBox`)."""
    owners: dict[str, str] = {}
    for toolset in toolsets:
        try:
            tools = toolset.tools()
        except Exception:  # a server's tools are known once it is open
            continue
        for tool in tools:
            if tool.name in owners:
                raise ToolError(
                    f"two tools are named {tool.name!r} (from {owners[tool.name]!r} and "
                    f"{toolset.name!r}): give one of them another name",
                    tool=tool.name,
                )
            owners[tool.name] = toolset.name


@contextmanager
def _importable_from(root: Path | None) -> Iterator[None]:
    """``root`` on ``sys.path`` while importing (removed after; the module stays imported)."""
    entry = str(root) if root is not None else None
    added = entry is not None and entry not in sys.path
    if added:
        sys.path.insert(0, str(entry))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(entry))


def _imported(entry: str, root: Path | None) -> Callable[..., Any]:
    """The function ``entry`` (``package.module:function``) names, or a clear error."""
    module_name, _, attribute = entry.partition(":")
    with _importable_from(root):
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # ImportError, or the module's own failure
            raise ToolError(
                f"tool {entry!r}: module {module_name!r} cannot be imported "
                f"({type(error).__name__}: {error})",
                tool=entry,
            ) from None
    value: Any = getattr(module, attribute, None)
    if value is None:
        raise ToolError(f"tool {entry!r}: {module_name} has no {attribute!r}", tool=entry)
    if not callable(value) or isinstance(value, type):
        raise ToolError(
            f"tool {entry!r}: {module_name}.{attribute} is not a function "
            f"(it is a {type(value).__name__})",
            tool=entry,
        )
    try:
        Tool.from_function(value)
    except LlmRequestError as error:  # no type hints, *args...
        raise ToolError(f"tool {entry!r}: {error}", tool=entry) from None
    function: Callable[..., Any] = value
    return function

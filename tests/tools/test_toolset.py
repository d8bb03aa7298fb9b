"""An agent's ``tools:`` entries as toolsets (tools/toolset.py): Python functions by import path
(errors naming the entry), built-in groups, MCP server factories, unknown names and duplicates."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import ToolError
from coditect_core.llm_abstractions.tool_types import Tool
from coditect_core.tools import FunctionToolset, ToolResult, Toolset
from coditect_core.tools import toolset as toolset_module
from coditect_core.tools.toolset import (
    BuiltinGroup,
    ToolContext,
    check_tool_entry,
    resolve_toolsets,
)

MODULE = '''
def shout(text: str) -> str:
    """Shout it."""
    return text.upper()

def untyped(text):
    return text

NOT_A_FUNCTION = 42
'''


@pytest.fixture
def project(tmp_path: Path) -> Iterator[ToolContext]:
    package = tmp_path / "mytools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "text.py").write_text(MODULE)
    (package / "other.py").write_text("def shout(x: int) -> int:\n    return x\n")
    (package / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    yield ToolContext(workspace=tmp_path, import_root=tmp_path)
    for name in [m for m in sys.modules if m == "mytools" or m.startswith("mytools.")]:
        del sys.modules[name]


async def test_a_python_function_by_import_path_is_a_tool(project: ToolContext) -> None:
    (toolset,) = resolve_toolsets(["mytools.text:shout"], project)
    assert isinstance(toolset, FunctionToolset)
    assert toolset.name == "python"
    assert [t.name for t in toolset.tools()] == ["shout"]
    assert (await toolset.call("shout", {"text": "hi"})).content == "HI"
    assert str(project.import_root) not in sys.path  # the folder was on the path only to import


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("mytools.nothere:shout", "module 'mytools.nothere' cannot be imported"),
        ("mytools.broken:shout", "RuntimeError: broken at import"),
        ("mytools.text:missing", "has no 'missing'"),
        ("mytools.text:NOT_A_FUNCTION", "is not a function \\(it is a int\\)"),
        ("mytools.text:untyped", "has no type hint"),
        ("mytools.text:", "is not an import path"),
        ("read_everything", "unknown tool 'read_everything'"),
    ],
)
def test_an_entry_that_cannot_be_a_tool_is_refused_naming_it(
    project: ToolContext, entry: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message) as caught:
        resolve_toolsets([entry], project)
    assert caught.value.tool == entry


def test_an_entry_twice_and_a_name_from_two_sources_are_refused(project: ToolContext) -> None:
    with pytest.raises(ToolError, match="listed twice"):
        resolve_toolsets(["mytools.text:shout", "mytools.text:shout"], project)
    with pytest.raises(ToolError, match="'shout'"):
        resolve_toolsets(["mytools.text:shout", "mytools.other:shout"], project)


class Recorder(Toolset):
    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.names = names

    def tools(self) -> list[Tool]:
        return [Tool(n) for n in self.names]

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult(name)


def test_builtin_names_of_one_group_make_one_toolset_and_mcp_servers_follow(
    project: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[list[str]] = []

    def make(names: list[str], context: ToolContext) -> Toolset:
        made.append(names)
        assert context.workspace == project.workspace
        return Recorder("web", names)

    group = BuiltinGroup(frozenset({"fetch_url", "post_url"}), make)
    monkeypatch.setattr(toolset_module, "BUILTIN_TOOLS", [group])
    assert check_tool_entry("fetch_url") is None
    context = ToolContext(project.workspace, mcp_servers={"docs": lambda: Recorder("docs", [])})
    toolsets = resolve_toolsets(["fetch_url", "post_url"], context)
    assert made == [["fetch_url", "post_url"]]
    assert [t.name for t in toolsets] == ["web", "docs"]


async def test_the_shipped_file_tools_and_run_command_by_name(project: ToolContext) -> None:
    (project.workspace / "notes.txt").write_text("hello\n")
    context = ToolContext(project.workspace, allow_commands=(("python", "-V"),))
    files, commands = resolve_toolsets(["read_file", "list_files", "run_command"], context)
    assert sorted(t.name for t in files.tools()) == ["list_files", "read_file"]
    assert [t.name for t in commands.tools()] == ["run_command"]
    async with files:
        answer = await files.call("read_file", {"path": "notes.txt"})
    assert "hello" in answer.content
    assert not answer.is_error

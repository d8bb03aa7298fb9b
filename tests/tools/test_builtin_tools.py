"""The built-in tools by name through an agent's ``tools:`` (tools/toolset.py): the file tools
become one FileToolset confined to the workspace, run_command a CommandToolset with the
context's allow-list; every built-in name is known to the project file's check."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from coditect_core.tools.commands import COMMAND_TOOLS, CommandToolset
from coditect_core.tools.files import READ_TOOLS, WRITE_TOOLS, FileToolset
from coditect_core.tools.toolset import (
    ToolContext,
    builtin_names,
    check_tool_entry,
    resolve_toolsets,
)


def test_every_built_in_name_is_known() -> None:
    assert builtin_names() == sorted([*READ_TOOLS, *WRITE_TOOLS, *COMMAND_TOOLS])
    assert check_tool_entry("apply_patch") is None
    assert check_tool_entry("rm_rf") is not None


def test_names_become_the_file_and_command_toolsets_confined_to_the_workspace(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    context = ToolContext(
        workspace=tmp_path, allow_commands=[[sys.executable, "-c"]], require_sandbox=False
    )
    files, commands = resolve_toolsets(["read_file", "edit_file", "run_command"], context)
    assert isinstance(files, FileToolset)
    assert isinstance(commands, CommandToolset)
    assert [t.name for t in files.tools()] == ["read_file", "edit_file"]
    assert [t.name for t in commands.tools()] == ["run_command"]
    read = asyncio.run(files.call("read_file", {"path": "a.txt"}))
    assert read.content == "hello\n"
    out = asyncio.run(files.call("read_file", {"path": "../x"}))
    assert out.is_error
    ran = asyncio.run(commands.call("run_command", {"argv": [sys.executable, "-c", "print(7)"]}))
    assert ran.content == "exit code: 0\n--- stdout ---\n7\n"
    refused = asyncio.run(commands.call("run_command", {"argv": ["touch", "x"]}))
    assert refused.is_error
    assert not (tmp_path / "x").exists()

"""What an agent may call, knowing no tasks: the tool loop, built-in file tools and their path
confinement, workspaces (git worktrees), the command sandbox, the MCP client.

Sits between :mod:`coditect_core.orchestration` (which wires tools to tasks) and
:mod:`coditect_core.llm_abstractions` (which maps tools to each provider's wire format).
A tool source is a :class:`~.base.Toolset`; a tool's answer is a :class:`~.base.ToolResult`.
"""

from __future__ import annotations

from .base import FunctionToolset, ToolResult, Toolset, truncate_text
from .loop import AgentLoop, LoopHooks, LoopLimits, LoopResult, LoopResume, ToolBox, ToolCallRecord

__all__ = [
    "AgentLoop",
    "FunctionToolset",
    "LoopHooks",
    "LoopLimits",
    "LoopResult",
    "LoopResume",
    "ToolBox",
    "ToolCallRecord",
    "ToolResult",
    "Toolset",
    "truncate_text",
]

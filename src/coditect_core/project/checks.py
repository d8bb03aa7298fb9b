"""Checks that span fields of a well-typed project file, each naming the exact field at fault.

Duplicate task ids, dependencies on missing tasks, cycles (printed as their path, found by
:func:`coditect_core.orchestration.scheduler.find_cycle`), tasks and defaults that name unknown
agents, agents whose fallbacks, reviewer or MCP servers are unknown, interface settings that do
not fit together, MCP servers that are neither a command nor a URL, and malformed ``${VAR}``
references.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator

from ..errors import ToolError
from ..orchestration.scheduler import find_cycle
from ..tools.commands import parse_allow_commands
from ..tools.toolset import check_tool_entry
from ._yaml import FieldPath, LineMap
from .diagnostics import Problem
from .env import EXPANDED_FIELDS, VariableSyntaxError, iter_strings, references
from .schema import AgentSpec, McpServerEntry, ProjectSpec

__all__ = ["agent_strings", "check_project", "mcp_strings"]

_NEEDS_COMMAND = ("cli", "script")


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(listed[:12]) + (", ..." if len(listed) > 12 else "")
    return shown or "none"


def agent_strings(name: str, agent: AgentSpec) -> Iterator[tuple[FieldPath, str]]:
    """The strings of agent ``name`` that ``${VAR}`` expansion applies to, with their paths."""
    base: FieldPath = ("agents", name)
    for field in EXPANDED_FIELDS:
        value = getattr(agent, field)
        if isinstance(value, str):
            yield (*base, field), value
    if agent.command:
        yield from iter_strings(agent.command, (*base, "command"))
    yield from iter_strings(agent.options, (*base, "options"))


def mcp_strings(name: str, server: McpServerEntry) -> Iterator[tuple[FieldPath, str]]:
    """The strings of MCP server ``name`` that ``${VAR}`` expansion applies to (command, args,
    env and header values, cwd, url), with their paths."""
    base: FieldPath = ("mcp_servers", name)
    for field in ("command", "cwd", "url"):
        value = getattr(server, field)
        if isinstance(value, str):
            yield (*base, field), value
    yield from iter_strings(server.args, (*base, "args"))
    yield from iter_strings(server.env, (*base, "env"))
    yield from iter_strings(server.headers, (*base, "headers"))


_PREFIX = re.compile(r"[A-Za-z0-9_-]*\Z")


class _Checker:
    def __init__(self, spec: ProjectSpec, lines: LineMap) -> None:
        self.spec = spec
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: FieldPath, message: str) -> None:
        self.problems.append(Problem(path, message, self.lines.line(path)))

    def agent_ref(self, path: FieldPath, name: str) -> None:
        if name not in self.spec.agents:
            self.add(
                path,
                f"unknown agent {name!r}{_did_you_mean(name, self.spec.agents)}; "
                f"agents: {_known(self.spec.agents)}",
            )

    def agents(self) -> None:
        for name, agent in self.spec.agents.items():
            at: FieldPath = ("agents", name)
            seen: set[str] = set()
            for index, fallback in enumerate(agent.fallbacks):
                path = (*at, "fallbacks", index)
                if fallback == name:
                    self.add(path, f"agent {name!r} lists itself as a fallback")
                elif fallback in seen:
                    self.add(path, f"fallback {fallback!r} is listed twice")
                else:
                    self.agent_ref(path, fallback)
                seen.add(fallback)
            if agent.interface in _NEEDS_COMMAND and not agent.command:
                self.add(
                    (*at, "interface"),
                    f"interface {agent.interface} needs a command (an argv list such as "
                    "[claude, -p])",
                )
            if agent.command and agent.interface not in _NEEDS_COMMAND:
                self.add(
                    (*at, "command"),
                    f"command is only used by interface cli or script, but the interface is "
                    f"{agent.interface}: add 'interface: cli'",
                )
            if agent.interface == "hybrid" and agent.reviewer is None:
                self.add((*at, "interface"), "interface hybrid needs a reviewer agent")
            if agent.reviewer is not None:
                if agent.interface != "hybrid":
                    self.add(
                        (*at, "reviewer"),
                        f"reviewer is only used by interface hybrid, not {agent.interface}",
                    )
                elif agent.reviewer == name:
                    self.add((*at, "reviewer"), f"agent {name!r} cannot review its own drafts")
                else:
                    self.agent_ref((*at, "reviewer"), agent.reviewer)
            if (
                agent.type == "custom"
                and agent.interface in ("api", "hybrid")
                and not agent.provider
            ):
                self.add(
                    (*at, "type"),
                    "type custom needs 'provider': the name of an LLM provider plugin",
                )
            if agent.provider is not None and agent.type != "custom":
                self.add(
                    (*at, "provider"),
                    f"provider is only used with type custom, not {agent.type}",
                )
            for path, text in agent_strings(name, agent):
                self.syntax(path, text)
            listed: set[str] = set()
            for index, server in enumerate(agent.mcp_servers):
                path = (*at, "mcp_servers", index)
                if server in listed:
                    self.add(path, f"MCP server {server!r} is listed twice")
                elif server not in self.spec.mcp_servers:
                    self.add(
                        path,
                        f"unknown MCP server {server!r}"
                        f"{_did_you_mean(server, self.spec.mcp_servers)}; "
                        f"mcp_servers: {_known(self.spec.mcp_servers)}",
                    )
                listed.add(server)
            self.tools(name, agent)

    def tools(self, name: str, agent: AgentSpec) -> None:
        at: FieldPath = ("agents", name, "tools")
        if agent.tools and agent.interface != "api":
            self.add(at, f"tools are only used by interface api, not {agent.interface}")
        seen: set[str] = set()
        for index, entry in enumerate(agent.tools):
            problem = check_tool_entry(entry)
            if problem is None and entry in seen:
                problem = f"tool {entry!r} is listed twice"
            if problem is not None:
                self.add((*at, index), problem)
            seen.add(entry)
        commands: FieldPath = ("agents", name, "allow_commands")
        if "run_command" in agent.tools and not agent.allow_commands:
            self.add(
                commands,
                "tool run_command needs allow_commands: the commands it may run "
                '(e.g. ["python -m pytest"] or [[python, -m, pytest]])',
            )
        elif agent.allow_commands and "run_command" not in agent.tools:
            self.add(commands, "allow_commands is only used with the tool run_command")
        for index, tool in enumerate(agent.approve):
            mcp = any(tool.startswith(self._mcp_prefix(server)) for server in agent.mcp_servers)
            if tool not in agent.tools and not mcp:
                self.add(
                    ("agents", name, "approve", index),
                    f"tool {tool!r} is not one of the agent's tools "
                    f"({', '.join(agent.tools) or 'none'}) or of its MCP servers",
                )
        for index, command in enumerate(agent.allow_commands):
            try:
                parse_allow_commands([command])
            except ToolError as error:
                self.add((*commands, index), str(error))

    def _mcp_prefix(self, server: str) -> str:
        """What the names of MCP server ``server``'s tools start with."""
        entry = self.spec.mcp_servers.get(server)
        prefix = entry.prefix if entry is not None else None
        return f"{server}__" if prefix is None else prefix

    def syntax(self, path: FieldPath, text: str) -> None:
        try:
            references(text)
        except VariableSyntaxError as error:
            self.add(path, str(error))

    def mcp_servers(self) -> None:
        for name, server in self.spec.mcp_servers.items():
            at: FieldPath = ("mcp_servers", name)
            if (server.command is None) == (server.url is None):
                self.add(
                    at,
                    f"MCP server {name!r}: give either 'command' (a stdio server) or 'url' "
                    "(a streamable HTTP server)",
                )
            elif server.url is not None:
                for field in ("args", "env", "cwd"):
                    if getattr(server, field):
                        self.add((*at, field), f"{field} is only used with 'command', not 'url'")
                if not server.url.startswith(("http://", "https://", "${")):
                    self.add((*at, "url"), "url must start with http:// or https://")
            elif server.headers:
                self.add((*at, "headers"), "headers are only used with 'url', not 'command'")
            if server.prefix is not None and not _PREFIX.match(server.prefix):
                self.add(
                    (*at, "prefix"),
                    f"prefix {server.prefix!r} may use only letters, digits, '_' and '-' "
                    "(it goes into tool names)",
                )
            seen: set[str] = set()
            for index, tool in enumerate(server.tools or ()):
                if tool in seen:
                    self.add((*at, "tools", index), f"tool {tool!r} is listed twice")
                seen.add(tool)
            for path, text in mcp_strings(name, server):
                self.syntax(path, text)

    def tasks(self) -> None:
        spec = self.spec
        if spec.defaults.agent is not None:
            self.agent_ref(("defaults", "agent"), spec.defaults.agent)
        first: dict[str, int] = {}
        for index, task in enumerate(spec.tasks):
            if task.id in first:
                other = first[task.id]
                line = self.lines.line(("tasks", other))
                self.add(
                    ("tasks", index, "id"),
                    f"duplicate task id {task.id!r} (first used by tasks[{other}] at line {line})",
                )
            else:
                first[task.id] = index
        ids = [task.id for task in spec.tasks]
        for index, task in enumerate(spec.tasks):
            at: FieldPath = ("tasks", index)
            label = f" (task {task.id!r})"
            if task.agent is not None:
                self.agent_ref((*at, "agent"), task.agent)
            elif spec.defaults.agent is None and len(spec.agents) > 1:
                self.add(
                    at,
                    f"no agent: set 'agent' on the task or 'defaults: {{agent: ...}}'{label}",
                )
            listed: set[str] = set()
            for position, dep in enumerate(task.dependencies):
                path = (*at, "dependencies", position)
                if dep == task.id:
                    self.add(path, f"task {task.id!r} depends on itself")
                elif dep in listed:
                    self.add(path, f"dependency {dep!r} is listed twice{label}")
                elif dep not in first:
                    self.add(
                        path,
                        f"depends on unknown task {dep!r}"
                        f"{_did_you_mean(dep, [i for i in ids if i not in listed | {task.id}])}"
                        f"{label}",
                    )
                listed.add(dep)

    def cycle(self) -> None:
        graph: dict[str, list[str]] = {}
        index_of: dict[str, int] = {}
        for index, task in enumerate(self.spec.tasks):
            if task.id not in graph:
                graph[task.id] = list(task.dependencies)
                index_of[task.id] = index
        path = find_cycle(graph)
        if path is None:
            return
        start, then = path[0], path[1]
        position = graph[start].index(then)
        where: FieldPath = ("tasks", index_of[start], "dependencies", position)
        self.add(where, f"dependency cycle: {' -> '.join(path)} (each depends on the next)")


def check_project(spec: ProjectSpec, lines: LineMap) -> list[Problem]:
    """Every cross-field problem of ``spec``; the cycle check runs once the rest is clean."""
    checker = _Checker(spec, lines)
    checker.agents()
    checker.mcp_servers()
    checker.tasks()
    if not checker.problems:
        checker.cycle()
    return checker.problems

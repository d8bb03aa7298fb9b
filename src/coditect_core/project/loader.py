"""Load a project file: read and check it (:class:`ProjectFile`), then resolve it for one run
(:class:`Project`: an ``AgentRegistry`` of ``AgentConfig`` and a list of ``AgentTask``).

Two steps, because which environment variables must be set depends on the run::

    project_file = read_project_file("project.yaml")         # shape, types, graph: no env
    project = project_file.resolve(only=["TASK-002"], agent_override=None)

:func:`load_project` does both. Resolving expands ``${VAR}`` in the agents' settings (the value
of a secret variable, and an ``api_key``, are registered as secrets: masked at every exit). A
variable that is unset is an error only for an agent the run will use: one that runs a selected
task (or the override agent), or reviews for one. A fallback whose variables are unset is dropped
from the chain with a warning; an agent no selected task needs is left out of the registry and
listed in :attr:`Project.unavailable_agents` with the reason.
"""

from __future__ import annotations

import copy
import difflib
import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import AgentError, ProjectFileError, ToolsetError
from ..orchestration.agent_registry import (
    AgentCapability,
    AgentConfig,
    AgentInterface,
    AgentRegistry,
    AgentType,
)
from ..orchestration.task import AgentTask, TaskPriority
from ..secrets import register_secret
from ..tools.base import Toolset
from ..tools.checks import DEFAULT_CHECK_TIMEOUT_S, Check
from ..tools.mcp import DEFAULT_CALL_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, McpServerSpec, McpToolset
from ..tools.workspace import DEFAULT_AUTHOR
from ._yaml import MAX_FILE_BYTES, FieldPath, LineMap, format_path, paused_gc, read_yaml
from .checks import agent_strings, check_project, mcp_strings
from .diagnostics import Problem, from_validation_error, raise_problems
from .env import expand, expand_value, references, secret_values
from .output_schemas import read_output_schemas
from .schema import (
    AgentSpec,
    BudgetSpec,
    CheckRunSpec,
    DefaultsSpec,
    PriceSpec,
    ProjectSpec,
    ResourcesSpec,
)

__all__ = [
    "AgentSettings",
    "Project",
    "ProjectFile",
    "RepoSettings",
    "load_project",
    "parse_project_file",
    "read_project_file",
]

logger = logging.getLogger(__name__)


_CACHE: dict[object, str] = {True: "on", False: "off", "always": "always"}


@dataclass(frozen=True)
class AgentSettings:
    """An agent's limits and costs (read now; consumed by rate limiting, budgets and Ray)."""

    requests_per_minute: float | None = None
    tokens_per_minute: int | None = None
    max_concurrency: int | None = None
    price: PriceSpec | None = None
    fallback_on: str = "retryable"
    on_truncated: str = "warn"
    resources: ResourcesSpec | None = None
    cache: str | None = None
    """``on``, ``off`` or ``always`` (the file's ``cache: true|false|always``); None: unset."""
    on_conflict: str | None = None
    """What a merge conflict of its task does: ``fail`` or ``ask``; None: the project's."""
    mcp_servers: tuple[str, ...] = ()
    """The MCP servers whose tools the agent may call (names in :attr:`Project.mcp_servers`)."""


@dataclass(frozen=True)
class RepoSettings:
    """The git repository writing tasks change, as the project file says (``repo:``,
    ``base_branch:``, ``integration_branch:``, ``on_conflict:``, ``commit_author:``)."""

    repo: Path | None = None
    """Resolved against the project file's folder; None: that folder."""
    base_branch: str | None = None
    integration_branch: str | None = None
    on_conflict: str = "fail"
    commit_author: str = DEFAULT_AUTHOR


@dataclass(repr=False)
class Project:
    """A project ready to run: its agents, its tasks, and which of them this run executes."""

    name: str
    path: Path | None
    description: str
    defaults: DefaultsSpec
    agents: AgentRegistry
    tasks: list[AgentTask]
    selected: list[str]
    task_timeouts: dict[str, float]
    agent_settings: dict[str, AgentSettings]
    budget: BudgetSpec | None = None
    runner: str = "local"
    keep_backups: int = 5
    unavailable_agents: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    repo: RepoSettings = field(default_factory=RepoSettings)
    task_checks: dict[str, list[Check]] = field(default_factory=dict)
    """Task id -> its acceptance checks (tasks without checks are absent)."""
    check_attempts: dict[str, int] = field(default_factory=dict)
    """Task id -> how many times its agent may try to pass its checks."""

    @property
    def repo_path(self) -> Path:
        """The repository writing tasks change: ``repo:``, else the project file's folder."""
        if self.repo.repo is not None:
            return self.repo.repo
        return self.path.parent if self.path is not None else Path.cwd()

    def on_conflict_for(self, task_id: str) -> str:
        """``ask`` or ``fail``: the task's agent's ``on_conflict``, else the project's."""
        agent = self.task(task_id).agent
        settings = self.agent_settings.get(agent) if agent else None
        if settings is not None and settings.on_conflict is not None:
            return settings.on_conflict
        return self.repo.on_conflict

    workspace: Path | None = None
    """The folder tools work in: ``workspace:`` from the project file's folder, else that
    folder (``None`` for a project read from a string)."""
    mcp_servers: dict[str, McpServerSpec] = field(default_factory=dict)
    """The MCP servers the run's agents use, resolved (``${VAR}`` expanded)."""

    def mcp_toolsets(self, agent: str) -> list[Toolset]:
        """A fresh (unopened) :class:`McpToolset` for each MCP server ``agent`` may use;
        :class:`ToolsetError` naming a server that could not be resolved (a fallback agent's
        server whose variables are unset)."""
        return [make() for make in self.mcp_factories().get(agent, {}).values()]

    def mcp_factories(self) -> dict[str, dict[str, Callable[[], Toolset]]]:
        """For each agent with MCP servers: server name -> a factory of a new (unopened)
        :class:`McpToolset`, for the executor (each task's loop opens and closes its own). A
        server that could not be resolved raises :class:`ToolsetError` naming it when its
        factory is called (that is, only when a task of the agent runs)."""

        def factory(agent: str, server: str) -> Callable[[], Toolset]:
            spec = self.mcp_servers.get(server)
            if spec is not None:
                return functools.partial(McpToolset, spec)

            def unavailable() -> Toolset:
                raise ToolsetError(
                    f"MCP server {server!r} of agent {agent!r} is not available: "
                    "an environment variable it needs is not set",
                    toolset=server,
                )

            return unavailable

        return {
            agent: {server: factory(agent, server) for server in settings.mcp_servers}
            for agent, settings in self.agent_settings.items()
            if settings.mcp_servers
        }

    def task(self, task_id: str) -> AgentTask:
        """The task called ``task_id`` (``KeyError`` if there is none)."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(task_id)

    def selected_tasks(self) -> list[AgentTask]:
        """The tasks this run executes, in file order."""
        chosen = set(self.selected)
        return [task for task in self.tasks if task.task_id in chosen]

    def graph(self) -> dict[str, list[str]]:
        """Task id -> the ids it depends on."""
        return {task.task_id: list(task.dependencies) for task in self.tasks}

    def timeout_for(self, task_id: str) -> float | None:
        """The task's own ``timeout``, else ``defaults.timeout``, else ``None``."""
        return self.task_timeouts.get(task_id, self.defaults.timeout)

    def __repr__(self) -> str:
        return (
            f"Project(name={self.name!r}, path={str(self.path) if self.path else None!r}, "
            f"agents={self.agents.names()!r}, tasks={len(self.tasks)}, "
            f"selected={len(self.selected)}, runner={self.runner!r})"
        )


def _closure(start: Iterable[str], edges: Mapping[str, list[str]]) -> dict[str, None]:
    seen = dict.fromkeys(start)
    stack = list(seen)
    while stack:
        for nxt in edges.get(stack.pop(), []):
            if nxt not in seen:
                seen[nxt] = None
                stack.append(nxt)
    return seen


@dataclass(frozen=True, repr=False)
class ProjectFile:
    """A project file that has been read and checked, before any ``${VAR}`` is expanded."""

    path: str
    spec: ProjectSpec
    lines: LineMap
    output_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Task id -> its ``output_schema`` (read from its file if it named one), checked."""

    @property
    def name(self) -> str:
        """``project:``, else the file name without its extension."""
        return self.spec.project or Path(self.path).stem or "project"

    @property
    def task_ids(self) -> list[str]:
        """Task ids in file order."""
        return [task.id for task in self.spec.tasks]

    def agent_of(self, task_id: str) -> str:
        """The agent a task names, else ``defaults.agent``, else the only agent."""
        return self._task_agents[task_id]

    def agents_of_tasks(self) -> dict[str, str]:
        """Task id -> :meth:`agent_of` it, in file order (a new dict: yours to change)."""
        return dict(self._task_agents)

    @cached_property
    def _task_agents(self) -> dict[str, str]:
        """Made once: :meth:`agent_of` is called per task, and must not cost a pass over all
        of them each time (that made ``agents``, ``doctor`` and ``report`` quadratic)."""
        fallback = self.spec.defaults.agent or next(iter(self.spec.agents))
        agents: dict[str, str] = {}
        for task in self.spec.tasks:
            agents.setdefault(task.id, task.agent or fallback)
        return agents

    def variables(self) -> dict[str, list[str]]:
        """Agent name -> the environment variables its settings refer to (no defaults)."""
        from .env import references

        out: dict[str, list[str]] = {}
        for name, agent in self.spec.agents.items():
            found = [
                ref.name
                for _, text in agent_strings(name, agent)
                for ref in references(text)
                if ref.default is None
            ]
            out[name] = list(dict.fromkeys(found))
        return out

    def mcp_server(self, name: str, environ: Mapping[str, str] | None = None) -> McpServerSpec:
        """MCP server ``name`` of ``mcp_servers:`` resolved: ``${VAR}`` expanded (each value
        expanded into ``env`` or ``headers``, and each secret variable's, registered as a
        secret), a relative ``cwd`` taken from the project file's folder. An unset variable is
        a :class:`ProjectFileError` naming the field; ``KeyError`` for an unknown name."""
        problems = self._mcp_problems(name, os.environ if environ is None else environ, "")
        raise_problems(problems, self.path)
        return self._mcp_server(name, os.environ if environ is None else environ)

    def _mcp_problems(self, name: str, env: Mapping[str, str], why: str) -> list[Problem]:
        server = self.spec.mcp_servers[name]
        return [
            Problem(path, f"environment variable {var} is not set{why}", self.lines.line(path))
            for path, text in mcp_strings(name, server)
            for var in expand(text, env)[1]
        ]

    def _mcp_server(self, name: str, env: Mapping[str, str]) -> McpServerSpec:
        server = self.spec.mcp_servers[name]

        def text(value: str) -> str:
            return expand(value, env)[0]

        for path, raw in mcp_strings(name, server):
            for value in secret_values(raw, env):
                register_secret(value)
            if path[2] in ("env", "headers") and references(raw):
                register_secret(text(raw))
        cwd = text(server.cwd) if server.cwd is not None else None
        if cwd is not None and not self.path.startswith("<"):
            cwd = str(Path(self.path).resolve().parent / Path(cwd).expanduser())
        return McpServerSpec(
            name,
            command=text(server.command) if server.command is not None else None,
            args=tuple(text(a) for a in server.args),
            env={k: text(v) for k, v in server.env.items()},
            cwd=cwd,
            url=text(server.url) if server.url is not None else None,
            headers={k: text(v) for k, v in server.headers.items()},
            tools=tuple(server.tools) if server.tools is not None else None,
            prefix=server.prefix,
            startup_timeout=server.startup_timeout or DEFAULT_STARTUP_TIMEOUT,
            call_timeout=server.call_timeout or DEFAULT_CALL_TIMEOUT,
        )

    def with_dependencies(self, task_ids: Iterable[str]) -> list[str]:
        """``task_ids`` plus everything they depend on, directly or not, in file order."""
        graph = {task.id: list(task.dependencies) for task in self.spec.tasks}
        wanted = _closure(task_ids, graph)
        return [tid for tid in graph if tid in wanted]

    def usable_agents(
        self, environ: Mapping[str, str] | None = None
    ) -> tuple[AgentRegistry, dict[str, str]]:
        """Every agent whose variables are set, resolved; and the others, each with why (no
        agent is required here, so nothing raises). What :meth:`resolve` gives as ``agents``
        and ``unavailable_agents``, without making the tasks (a check of the agents only)."""
        registry, unavailable, _ = self._registry({}, os.environ if environ is None else environ)
        return registry, unavailable

    def unset_variables(self, name: str, environ: Mapping[str, str] | None = None) -> list[str]:
        """Each ``${VAR}`` (without a default) of agent ``name`` that is unset, located:
        ``agents.gpt.api_key: environment variable OPENAI_API_KEY is not set (line 7)``."""
        env = os.environ if environ is None else environ
        out = []
        for path, var in self._missing(name, env):
            line = self.lines.line(path)
            at = f" (line {line})" if line is not None else ""
            out.append(f"{format_path(path)}: environment variable {var} is not set{at}")
        return out

    def _missing(self, name: str, environ: Mapping[str, str]) -> list[tuple[FieldPath, str]]:
        missing: list[tuple[FieldPath, str]] = []
        for path, text in agent_strings(name, self.spec.agents[name]):
            missing.extend((path, var) for var in expand(text, environ)[1])
        return missing

    def _select(self, only: Iterable[str] | None) -> list[str]:
        ids = self.task_ids
        if only is None:
            return ids
        wanted = list(dict.fromkeys(only))
        known = set(ids)
        for tid in wanted:
            if tid not in known:
                close = difflib.get_close_matches(tid, ids, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ProjectFileError(
                    f"task {tid!r} was selected to run but is not in the file{hint}",
                    path=self.path,
                )
        chosen = set(wanted)
        return [tid for tid in ids if tid in chosen]

    def workspace(self) -> Path | None:
        """The folder tools work in: ``workspace:`` relative to the project file's folder,
        else that folder; ``None`` for a file read from a string without ``workspace:``."""
        folder = None if self.path.startswith("<") else Path(self.path).resolve().parent
        given = self.spec.workspace
        if given is None:
            return folder
        path = Path(os.path.expanduser(given))
        return (path if folder is None or path.is_absolute() else folder / path).resolve()

    def resolve(
        self,
        *,
        only: Iterable[str] | None = None,
        agent_override: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Project:
        """The :class:`Project` for a run of ``only`` (task ids; ``None``: all tasks).

        ``only`` is taken as given: pass the dependencies too if the run will execute them
        (:meth:`with_dependencies`). ``agent_override`` runs every selected task on that
        agent. ``environ`` defaults to ``os.environ``.
        """
        with paused_gc():  # a task object per task: no cycle among them
            return self._resolve(only, agent_override, os.environ if environ is None else environ)

    def _resolve(
        self, only: Iterable[str] | None, agent_override: str | None, env: Mapping[str, str]
    ) -> Project:
        agents = self.spec.agents
        selected = self._select(only)
        if agent_override is not None and agent_override not in agents:
            close = difflib.get_close_matches(agent_override, list(agents), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ProjectFileError(
                f"agent {agent_override!r} was chosen to run the tasks but is not defined"
                f"{hint}; agents: {', '.join(agents)}",
                path=self.path,
            )
        chosen = set(selected)
        task_agent = self.agents_of_tasks()
        if agent_override is not None:
            task_agent.update(dict.fromkeys(chosen, agent_override))
        why: dict[str, str] = {}
        for tid in selected:
            if agent_override is not None:
                why.setdefault(agent_override, "runs every selected task")
            why.setdefault(task_agent[tid], f"runs task {tid!r}")
        registry, unavailable, warnings = self._registry(why, env)
        mcp_servers = self._run_mcp_servers(why, registry.names(), env)

        defaults = self.spec.defaults
        tasks = [
            AgentTask(
                task_id=task.id,
                title=task.title,
                description=task.description,
                agent=task_agent[task.id],
                priority=TaskPriority(task.priority or defaults.priority),
                phase=task.phase,
                dependencies=list(task.dependencies),
                deliverables=list(task.deliverables),
                success_criteria=list(task.success_criteria),
                tags=list(task.tags),
                estimated_hours=task.estimated_hours,
                metadata=copy.deepcopy(task.metadata) if task.metadata else {},
                output_schema=copy.deepcopy(self.output_schemas.get(task.id)),
                output_mode=task.output_mode,
                output_retries=task.output_retries,
            )
            for task in self.spec.tasks
        ]
        return Project(
            name=self.name,
            path=None if self.path.startswith("<") else Path(self.path),
            description=self.spec.description,
            defaults=defaults,
            agents=registry,
            tasks=tasks,
            selected=selected,
            task_timeouts={t.id: t.timeout for t in self.spec.tasks if t.timeout is not None},
            agent_settings={
                name: AgentSettings(
                    requests_per_minute=spec.requests_per_minute,
                    tokens_per_minute=spec.tokens_per_minute,
                    max_concurrency=spec.max_concurrency,
                    price=spec.price,
                    fallback_on=spec.fallback_on,
                    on_truncated=spec.on_truncated,
                    resources=spec.resources,
                    cache=_CACHE.get(spec.cache),
                    on_conflict=spec.on_conflict,
                    mcp_servers=tuple(spec.mcp_servers),
                )
                for name, spec in agents.items()
            },
            repo=self._repo_settings(),
            task_checks={t.id: _checks(t.checks) for t in self.spec.tasks if t.checks},
            check_attempts={t.id: t.check_attempts for t in self.spec.tasks},
            budget=self.spec.budget,
            runner=self.spec.runner,
            keep_backups=self.spec.keep_backups,
            unavailable_agents=unavailable,
            warnings=warnings,
            workspace=self.workspace(),
            mcp_servers=mcp_servers,
        )

    def _repo_settings(self) -> RepoSettings:
        spec = self.spec
        repo = None
        if spec.repo is not None:
            repo = Path(spec.repo).expanduser()
            if not repo.is_absolute() and not self.path.startswith("<"):
                repo = Path(os.path.normpath(Path(self.path).resolve().parent / repo))
        return RepoSettings(
            repo=repo,
            base_branch=spec.base_branch,
            integration_branch=spec.integration_branch,
            on_conflict=spec.on_conflict,
            commit_author=spec.commit_author or DEFAULT_AUTHOR,
        )

    def _run_mcp_servers(
        self, why: dict[str, str], usable: Iterable[str], env: Mapping[str, str]
    ) -> dict[str, McpServerSpec]:
        """The MCP servers of the ``usable`` agents, resolved. An unset variable of a server of
        an agent the run needs (``why``: those agents, with the reason) is an error naming the
        field; a server of another agent (a fallback) with one is left out."""
        agents = self.spec.agents
        users: dict[str, str] = {}
        for agent in [*why, *usable]:
            if agents[agent].enabled:
                for server in agents[agent].mcp_servers:
                    users.setdefault(server, agent)
        problems = [
            problem
            for server, agent in users.items()
            if agent in why
            for problem in self._mcp_problems(
                server, env, f" (MCP server {server!r} of agent {agent!r} {why[agent]})"
            )
        ]
        raise_problems(problems, self.path)
        return {
            server: self._mcp_server(server, env)
            for server in self.spec.mcp_servers
            if server in users and not self._mcp_problems(server, env, "")
        }

    def _registry(
        self, why: dict[str, str], env: Mapping[str, str]
    ) -> tuple[AgentRegistry, dict[str, str], list[str]]:
        """The usable agents, the unusable ones with the reason, and warnings for the run.

        ``why`` maps the agents that run selected tasks to the reason; it gains their reviewers.
        Those agents (if enabled) must have every variable set, or this raises.
        """
        agents = self.spec.agents
        reviewers = {n: [a.reviewer] if a.reviewer else [] for n, a in agents.items()}
        required = list(_closure((a for a in why if agents[a].enabled), reviewers))
        for name in required:
            for reviewer in reviewers[name]:
                why.setdefault(reviewer, f"reviews for {name!r}")
        missing = {name: self._missing(name, env) for name in agents}
        problems = [
            Problem(
                path,
                f"environment variable {var} is not set (agent {name!r} {why[name]})",
                self.lines.line(path),
            )
            for name in required
            for path, var in missing[name]
        ]
        raise_problems(problems, self.path)

        usable = {name for name in agents if not missing[name]}
        changed = True
        while changed:  # an agent whose reviewer is unusable is unusable too
            changed = False
            for name in list(usable):
                if any(reviewer not in usable for reviewer in reviewers[name]):
                    usable.discard(name)
                    changed = True
        unavailable: dict[str, str] = {}
        for name in agents:
            if name not in usable:
                unset = list(dict.fromkeys(var for _, var in missing[name]))
                unavailable[name] = (
                    f"{', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set"
                    if unset
                    else f"its reviewer {agents[name].reviewer!r} is unavailable"
                )
        warnings: list[str] = []
        used = _closure(required, {n: [*a.fallbacks, *reviewers[n]] for n, a in agents.items()})
        registry = AgentRegistry()
        for name, spec in agents.items():
            if name not in usable:
                continue
            fallbacks = []
            for fallback in spec.fallbacks:
                if fallback in usable:
                    fallbacks.append(fallback)
                elif name in used:
                    warnings.append(
                        f"agent {name!r}: fallback {fallback!r} is left out: "
                        f"{unavailable[fallback]}"
                    )
            registry.register(self._agent_config(name, spec, fallbacks, env))
        for warning in warnings:
            logger.warning("%s: %s", self.path, warning)
        return registry, unavailable, warnings

    def _agent_config(
        self, name: str, spec: AgentSpec, fallbacks: list[str], env: Mapping[str, str]
    ) -> AgentConfig:
        def text(value: str | None) -> str | None:
            return None if value is None else expand(value, env)[0]

        # A secret expanded into any setting (a system prompt, an option, a command argument)
        # is masked wherever it shows; sending it to the model is the file's choice.
        for _, raw in agent_strings(name, spec):
            for value in secret_values(raw, env):
                register_secret(value)
        register_secret(text(spec.api_key))
        try:
            return AgentConfig(
                name=name,
                agent_type=AgentType(spec.type),
                interface=AgentInterface(spec.interface),
                model=text(spec.model),
                api_key=text(spec.api_key),
                base_url=text(spec.base_url),
                system_prompt=text(spec.system_prompt),
                temperature=spec.temperature,
                max_tokens=spec.max_tokens,
                timeout=spec.timeout,
                capabilities=[AgentCapability(c) for c in spec.capabilities],
                fallbacks=fallbacks,
                enabled=spec.enabled,
                provider_options=expand_value(spec.options, env),
                command=expand_value(spec.command, env),
                reviewer=spec.reviewer,
                provider=text(spec.provider),
                description=text(spec.description) or "",
                tools=list(spec.tools),
                max_turns=spec.max_turns,
                max_tool_calls=spec.max_tool_calls,
                tool_timeout=spec.tool_timeout,
                max_parallel_tools=spec.max_parallel_tools,
                allow_commands=[
                    entry if isinstance(entry, str) else list(entry)
                    for entry in spec.allow_commands
                ],
                require_sandbox=spec.require_sandbox,
                approve=list(spec.approve),
            )
        except AgentError as error:  # the checks should have caught it: say where anyway
            at = ("agents", name)
            raise ProjectFileError(
                f"{format_path(at)}: {error}",
                path=self.path,
                line=self.lines.line(at),
                field=format_path(at),
            ) from None

    def __repr__(self) -> str:
        return (
            f"ProjectFile(path={self.path!r}, project={self.name!r}, "
            f"agents={list(self.spec.agents)!r}, tasks={len(self.spec.tasks)})"
        )


def _checks(items: Iterable[list[str] | CheckRunSpec]) -> list[Check]:
    out = []
    for item in items:
        if isinstance(item, CheckRunSpec):
            out.append(Check(tuple(item.run), item.timeout or DEFAULT_CHECK_TIMEOUT_S))
        else:
            out.append(Check(tuple(item)))
    return out


def parse_project_file(text: str, path: str | os.PathLike[str] = "<string>") -> ProjectFile:
    """Check project-file ``text`` (``path`` names it in errors); no environment is read."""
    name = os.fspath(path)
    if len(text) > MAX_FILE_BYTES:
        raise ProjectFileError("the text is over the 10 MB limit", path=name)
    with paused_gc():  # the document and its models: a million objects, no cycle
        return _check(*read_yaml(name, text), name)


def read_project_file(path: str | os.PathLike[str]) -> ProjectFile:
    """Read and check the project file at ``path``; no environment is read.

    Raises :class:`ProjectFileError` naming the file, line, field and bad value.
    """
    name = os.fspath(path)
    with paused_gc():  # the document and its models: a million objects, no cycle
        return _check(*read_yaml(name), name)


def load_project(
    path: str | os.PathLike[str],
    *,
    only: Iterable[str] | None = None,
    agent_override: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """:func:`read_project_file` then :meth:`ProjectFile.resolve`."""
    return read_project_file(path).resolve(
        only=only, agent_override=agent_override, environ=environ
    )


def _check(data: object, lines: LineMap, name: str) -> ProjectFile:
    if data is None:
        raise ProjectFileError(
            "the file has no content; a project file needs at least 'agents' and 'tasks'",
            path=name,
            line=lines.line(()),
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {data!r}"[:60]
        raise ProjectFileError(
            f"the top level must be a mapping with 'agents' and 'tasks', not {kind}",
            path=name,
            line=lines.line(()),
        )
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as error:
        raise_problems(from_validation_error(error, data, lines), name)
        raise  # unreachable: pydantic always reports at least one error
    raise_problems(check_project(spec, lines), name)
    schemas, problems = read_output_schemas(spec, lines, name)
    raise_problems(problems, name)
    return ProjectFile(path=name, spec=spec, lines=lines, output_schemas=schemas)

"""Which agents of a project can be used here, and what each one is missing.

:func:`check_agents` looks without any network traffic and without importing a provider SDK
(an SDK extra is found with :func:`importlib.util.find_spec`): the agent is enabled; its
``${VAR}`` references are set; its provider is known; the provider's SDK extra is installed; an
API key is at hand (``api_key:`` or the provider's variable); the embedded model file exists;
the command of a ``cli``/``script`` agent is on ``PATH``; the reviewer of a ``hybrid`` agent is
usable. :func:`check_run_agents` is the same check before a run, on the agents its tasks can
reach (their fallbacks and reviewers included): every problem at once, in the command's words.
:func:`ping_agents` then asks the usable ones for one token (and, for an agent with a
``base_url``, first checks that something answers HTTP there). :func:`check_ray_cluster` connects
to a Ray cluster as ``coditect run --ray-address`` would, and looks at its versions, nodes and
resources, and where each agent's requests could run. :func:`check_mcp_servers` looks at the
project's MCP servers offline (the ``[mcp]`` extra, their variables, a stdio command on ``PATH``);
:func:`start_mcp_servers` (``doctor --ping``) starts each one, lists its tools and stops it. Keys
never appear in the results: a reply or an error that echoes a known secret has it masked
(:func:`coditect_core.secrets.mask`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentError, CoditectError, LlmConfigurationError, ProjectFileError
from ..llm_abstractions.base_llm import BaseLlm
from ..orchestration.agent_registry import (
    AgentConfig,
    AgentInterface,
    AgentRegistry,
    AgentType,
)
from ..project import Project, ProjectFile
from ..secrets import mask

__all__ = [
    "EXTRAS",
    "SDK_MODULES",
    "AgentCheck",
    "McpCheck",
    "RayCheck",
    "check_agents",
    "check_mcp_servers",
    "check_ray_cluster",
    "check_run_agents",
    "installed_extras",
    "ping_agents",
    "start_mcp_servers",
]

SDK_MODULES: dict[str, tuple[str, str]] = {
    "anthropic-claude": ("anthropic", "anthropic"),
    "openai-gpt": ("openai", "openai"),
    "openai-compatible": ("openai", "openai"),
    "google-gemini": ("google.genai", "gemini"),
    "local": ("llama_cpp", "local"),
}
"""A built-in provider's name -> (the module its SDK provides, the extra that installs it)."""

EXTRAS: dict[str, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google.genai",
    "local": "llama_cpp",
    "mcp": "mcp",
}
"""An extra of coditect-core -> the module that shows it is installed."""

PING_PROMPT = "Reply with the single word: OK"


def module_installed(name: str) -> bool:
    """Whether ``name`` can be imported, found without importing it (a parent package of a
    dotted name is imported, as Python must; ``google`` is a bare namespace)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def installed_extras() -> dict[str, bool]:
    """Each provider extra of coditect-core, and whether it is installed."""
    return {extra: module_installed(module) for extra, module in EXTRAS.items()}


@dataclass
class AgentCheck:
    """One agent: its settings (no key) and what stands between it and a call."""

    name: str
    type: str
    interface: str
    model: str | None
    enabled: bool
    tasks: list[str]
    problems: list[str] = field(default_factory=list)
    provider: str | None = None
    base_url: str | None = None
    server: str | None = None
    """With a ping: what the ``base_url`` answered (``HTTP 200``), else None."""
    ping: dict[str, Any] | None = None
    """With a ping: ``{"ok": bool, "latency_s": ..., "model": ..., "error": ...}``."""
    price: str | None = None
    """Where its calls' prices come from: ``"own"`` (its ``price:``), ``"genai-prices"``,
    ``"free"`` (the local model), ``"unknown"`` (costs show as unknown); None: not an LLM."""

    @property
    def usable(self) -> bool:
        """Nothing missing (and, when pinged, the ping answered)."""
        return not self.problems and (self.ping is None or bool(self.ping.get("ok")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "interface": self.interface,
            "model": self.model,
            "provider": self.provider,
            "enabled": self.enabled,
            "base_url": self.base_url,
            "tasks": list(self.tasks),
            "usable": self.usable,
            "problems": list(self.problems),
            "server": self.server,
            "ping": self.ping,
            "price": self.price,
        }


def _price_source(cls: type[BaseLlm], config: AgentConfig | None) -> str:
    """Where the prices of an agent's calls come from (see :attr:`AgentCheck.price`)."""
    from ..llm_abstractions.base_llm import Usage
    from ..llm_abstractions.pricing import default_price_source

    model = (config.model if config else None) or cls.default_model
    cost = default_price_source().cost(
        cls.provider, model, Usage(1, 1), config.base_url if config else None
    )
    if cost is None:
        return "unknown"
    return "free" if cost == 0 else "genai-prices"


def _llm_class_problems(
    check: AgentCheck, config: AgentConfig | None, provider: str, environ: Mapping[str, str]
) -> None:
    from ..llm_abstractions.registry import get_llm_class

    try:
        cls = get_llm_class(provider)
    except LlmConfigurationError as error:
        check.problems.append(str(error))
        return
    check.provider = cls.provider
    check.price = _price_source(cls, config)
    sdk = SDK_MODULES.get(cls.provider)
    if sdk is not None and not module_installed(sdk[0]):
        check.problems.append(
            f"the SDK is not installed: pip install 'coditect-core[{sdk[1]}]' (module {sdk[0]})"
        )
    has_key = config is None or config.api_key_value() is not None  # None: said above
    in_env = any((environ.get(var) or "").strip() for var in cls.api_key_env)
    if cls.api_key_env and not has_key and not in_env:
        check.problems.append(
            f"no API key: set {' or '.join(cls.api_key_env)} (or api_key: in the file)"
        )
    if cls.provider == "local" and config is not None:
        from ..llm_abstractions.local import default_model_path

        if config.model:
            if not os.path.isfile(os.path.expanduser(config.model)):
                check.problems.append(f"model file {config.model!r} does not exist")
        else:
            try:
                default_model_path()
            except CoditectError as error:
                check.problems.append(str(error))


def _command_problem(command: list[str] | None) -> str | None:
    if not command:
        return "no command"
    program = command[0]
    if os.sep in program:
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return None
        return f"command {program!r} does not exist or is not executable"
    if shutil.which(program) is None:
        return f"command {program!r} is not on PATH"
    return None


def check_agents(
    project_file: ProjectFile, environ: Mapping[str, str] | None = None
) -> tuple[Project, list[AgentCheck]]:
    """Every agent of the file, in file order, with what it is missing (no network).

    Returns the project resolved for these checks too (its registry holds the agents whose
    variables are set), for :func:`ping_agents`.
    """
    env = os.environ if environ is None else environ
    project = project_file.resolve(only=[], environ=env)
    return project, _checks(project_file, project.agents, project.unavailable_agents, env)


def _checks(
    project_file: ProjectFile,
    agents: AgentRegistry,
    unavailable: Mapping[str, str],
    env: Mapping[str, str],
) -> list[AgentCheck]:
    """:func:`check_agents` over ``agents`` (those whose variables are set) and ``unavailable``
    (the others, with why)."""
    users: dict[str, list[str]] = {}
    for tid, agent in project_file.agents_of_tasks().items():  # file order, linear
        users.setdefault(agent, []).append(tid)
    checks: list[AgentCheck] = []
    for name, spec in project_file.spec.agents.items():
        config = agents.get(name) if name in agents else None
        check = AgentCheck(
            name=name,
            type=str(spec.type),
            interface=str(spec.interface),
            model=config.model if config else spec.model,
            enabled=spec.enabled,
            tasks=users.get(name, []),
            base_url=config.base_url if config else None,
        )
        if not spec.enabled:
            check.problems.append("disabled (enabled: false in the file)")
        if name in unavailable:
            check.problems.append(unavailable[name])
        interface = AgentInterface(spec.interface)
        if interface in (AgentInterface.API, AgentInterface.HYBRID):
            provider = spec.provider if spec.type == AgentType.CUSTOM.value else spec.type
            if config is not None and config.provider:
                provider = config.provider
            if provider and "${" not in provider:  # else: its variable is unset (said above)
                _llm_class_problems(check, config, provider, env)
                if spec.price is not None and check.price is not None:
                    check.price = "own"
        elif interface in (AgentInterface.CLI, AgentInterface.SCRIPT):
            command = config.command if config else spec.command
            problem = _command_problem(command)
            if problem:
                check.problems.append(problem)
        checks.append(check)
    by_name = {c.name: c for c in checks}
    for name, spec in project_file.spec.agents.items():
        reviewer = by_name.get(spec.reviewer) if spec.reviewer else None
        if reviewer is not None and reviewer.problems and not by_name[name].problems:
            by_name[name].problems.append(f"its reviewer {reviewer.name!r} is not usable")
    return checks


def agents_in_reach(
    project_file: ProjectFile, task_ids: Iterable[str], agent_override: str | None = None
) -> dict[str, str]:
    """The agents that running ``task_ids`` can call, each with why (in the command's words):
    the agent of each task (or ``agent_override``), then, from each of those, its enabled
    fallbacks and its reviewer, transitively. A disabled fallback is skipped by a run, so it is
    not in reach; a task's own agent is, disabled or not (the task could not run)."""
    agents = project_file.spec.agents
    why: dict[str, str] = {}
    runs: dict[str, list[str]] = {}
    for tid in task_ids:
        runs.setdefault(agent_override or project_file.agent_of(tid), []).append(tid)
    for name, tids in runs.items():
        shown = ", ".join(map(repr, tids[:3])) + (
            f" and {len(tids) - 3} more" if len(tids) > 3 else ""
        )
        why[name] = f"runs task{'s' if len(tids) > 1 else ''} {shown}"
    stack = list(why)
    while stack:
        name = stack.pop()
        spec = agents.get(name)
        if spec is None:
            continue
        nexts = [(f, f"fallback of {name!r}") for f in spec.fallbacks if f in agents]
        nexts = [(f, reason) for f, reason in nexts if agents[f].enabled]  # else: skipped
        if spec.reviewer:
            nexts.append((spec.reviewer, f"reviews for {name!r}"))
        for other, reason in nexts:
            if other not in why and other in agents:
                why[other] = reason
                stack.append(other)
    return why


def check_run_agents(
    project_file: ProjectFile,
    task_ids: Iterable[str],
    *,
    agent_override: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Before a run of ``task_ids``: :func:`check_agents` on every agent they can reach
    (:func:`agents_in_reach`), offline. Raises one :class:`AgentError` naming every problem
    (each with its agent, why the run needs it, and what to set) and the project file; returns
    None when there is none. Command, script and person agents need no key."""
    reach = agents_in_reach(project_file, task_ids, agent_override)
    if not reach:
        return
    env = os.environ if environ is None else environ
    registry, unavailable = project_file.usable_agents(env)  # no tasks made: a run makes them
    checks = _checks(project_file, registry, unavailable, env)
    lines: list[str] = []
    count = 0
    for check in checks:
        if check.name not in reach:
            continue
        problems: list[str] = []
        for problem in check.problems:
            if problem.startswith("its reviewer "):
                continue  # the reviewer's own problems are listed under it
            if problem == unavailable.get(check.name):
                unset = project_file.unset_variables(check.name, env)
                problems.extend(unset or [problem])  # each variable, where the file uses it
            else:
                problems.append(problem)
        if not problems:
            continue
        count += 1
        lines.extend(f"  agent {check.name!r} ({reach[check.name]}): {p}" for p in problems)
    if not lines:
        return
    raise AgentError(
        f"{project_file.path}: nothing was run: "
        f"{count} agent{'s' if count > 1 else ''} this run needs "
        f"{'are' if count > 1 else 'is'} not ready:\n"
        + "\n".join(lines)
        + f"\nfix these, then run again (check with: coditect doctor {project_file.path})"
    )


def _http_check(url: str, timeout: float) -> tuple[bool, str]:
    """Whether something answers HTTP at ``url`` (any status counts), and what."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "coditect-doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return True, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return False, f"nothing answers at {url}: {reason}"


async def _ping_one(check: AgentCheck, executor: Any, wait_s: float) -> None:
    if check.base_url:
        answered, what = await asyncio.to_thread(_http_check, check.base_url, min(wait_s, 5.0))
        check.server = what
        if not answered:
            check.problems.append(f"server not answering: {what}")
            return
    started = time.monotonic()
    try:
        llm = executor.get_llm(check.name)
        response = await asyncio.wait_for(
            llm.generate_async(PING_PROMPT, max_tokens=1, timeout=wait_s), wait_s + 1.0
        )
    except TimeoutError:
        check.ping = {"ok": False, "error": f"no answer within {wait_s:g}s"}
        return
    except CoditectError as error:
        check.ping = {"ok": False, "error": mask(str(error))}
        return
    check.ping = {
        "ok": True,
        "latency_s": round(time.monotonic() - started, 3),
        "model": response.model,
        "reply": mask(response.text)[:40],  # masked whole, then cut: no part of a key shows
    }


async def ping_agents(project: Project, checks: list[AgentCheck], *, wait_s: float = 20.0) -> None:
    """One-token live call on every usable agent with a model behind it (``api``, ``hybrid``
    and ``cli`` interfaces), all at once; the results land in each check's ``ping``."""
    from ..orchestration.executor import TaskExecutor

    executor = TaskExecutor(project.agents)
    pingable = {AgentInterface.API.value, AgentInterface.HYBRID.value, AgentInterface.CLI.value}
    try:
        await asyncio.gather(
            *(
                _ping_one(c, executor, wait_s)
                for c in checks
                if not c.problems and c.interface in pingable
            )
        )
    finally:
        await executor.aclose()


@dataclass
class McpCheck:
    """One MCP server of the project file: which agents list it, whether tasks use it, what
    stands in the way of starting it, and (once started by :func:`start_mcp_servers`) the
    tools it offers."""

    name: str
    transport: str
    agents: list[str]
    used: bool
    """An agent that runs tasks lists it (so a problem of it stops a run)."""
    problems: list[str] = field(default_factory=list)
    tools: list[str] | None = None
    """The tools it offered when started (their offered, prefixed names); None: not started."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transport": self.transport,
            "agents": list(self.agents),
            "used": self.used,
            "ok": self.ok,
            "problems": list(self.problems),
            "tools": None if self.tools is None else list(self.tools),
        }


def check_mcp_servers(
    project_file: ProjectFile, environ: Mapping[str, str] | None = None
) -> list[McpCheck]:
    """Every MCP server of the file, in file order, with what it is missing, offline: the
    ``[mcp]`` extra, its ``${VAR}`` references, a stdio server's command."""
    env = os.environ if environ is None else environ
    with_tasks = set(project_file.agents_of_tasks().values())
    listed: dict[str, list[str]] = {}
    for agent, agent_spec in project_file.spec.agents.items():
        for server_name in agent_spec.mcp_servers:
            listed.setdefault(server_name, []).append(agent)
    sdk = module_installed("mcp")
    checks: list[McpCheck] = []
    for name, entry in project_file.spec.mcp_servers.items():
        agents = listed.get(name, [])
        check = McpCheck(
            name=name,
            transport="stdio" if entry.command is not None else "http",
            agents=agents,
            used=any(a in with_tasks and project_file.spec.agents[a].enabled for a in agents),
        )
        if not sdk:
            check.problems.append("the mcp SDK is not installed: pip install 'coditect-core[mcp]'")
        try:
            server = project_file.mcp_server(name, env)
        except ProjectFileError as error:
            check.problems.append(mask(str(error)))
        else:
            if server.command is not None:
                program = server.command
                if os.sep in program and not os.path.isabs(program) and server.cwd:
                    program = os.path.join(server.cwd, program)
                problem = _command_problem([program])
                if problem:
                    check.problems.append(problem)
        checks.append(check)
    return checks


async def start_mcp_servers(
    project_file: ProjectFile,
    checks: list[McpCheck],
    *,
    wait_s: float = 20.0,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Start each server that has no problem yet (all at once, each within ``wait_s`` or its
    own shorter ``startup_timeout``), list its tools into its check, and stop it."""
    from ..tools.mcp import McpToolset

    env = os.environ if environ is None else environ

    async def start(check: McpCheck) -> None:
        spec = project_file.mcp_server(check.name, env)
        spec = dataclasses.replace(spec, startup_timeout=min(spec.startup_timeout, wait_s))
        try:
            async with McpToolset(spec) as toolset:
                check.tools = [tool.name for tool in toolset.tools()]
        except CoditectError as error:
            check.problems.append(mask(str(error)))

    await asyncio.gather(*(start(c) for c in checks if c.ok))


@dataclass
class RayCheck:
    """A Ray cluster as ``doctor --ray-address`` found it: whether this driver could connect,
    the Ray and Python versions on both sides, the live nodes and their resources, where each
    agent's requests could run, and what stands in the way of a run."""

    address: str
    connected: bool = False
    driver: dict[str, str | None] = field(default_factory=dict)
    cluster: dict[str, str | None] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    """Per agent whose requests go to Ray: ``{"agent", "on": "tasks"|"actor", "needs", "nodes"}``
    (``needs``: what one request, or the actor, reserves; ``nodes``: the ids of those it fits)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.connected and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "ok": self.ok,
            "connected": self.connected,
            "driver": dict(self.driver),
            "cluster": dict(self.cluster),
            "nodes": [dict(n) for n in self.nodes],
            "agents": [dict(a) for a in self.agents],
            "problems": list(self.problems),
        }


def _amounts(demand: Mapping[str, float]) -> str:
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}
    return " and ".join(f"{amount:g} {names[key]}" for key, amount in demand.items() if amount)


async def check_ray_cluster(
    project: Project,
    checks: list[AgentCheck],
    address: str,
    *,
    connect_timeout: float | None = None,
) -> RayCheck:
    """Connect to the Ray cluster at ``address`` as ``coditect run --ray-address`` would (the
    same check first, so the same errors: nothing there, token refused, other versions; within
    ``connect_timeout`` seconds), then look at its nodes and their resources, and, for each
    agent whose requests go to Ray (an ``api`` or ``hybrid`` agent that tasks use), at the nodes
    that could run one: its ``resources:`` (else one CPU) within a node's total. Disconnects
    after."""
    from ..orchestration.runners.ray import CONNECT_TIMEOUT, RayRunner

    resources = {n: s.resources for n, s in project.agent_settings.items() if s.resources}
    runner = RayRunner(
        address, resources=resources, connect_timeout=connect_timeout or CONNECT_TIMEOUT
    )
    found = RayCheck(address=address)
    try:
        info = await asyncio.to_thread(runner.describe)
    except CoditectError as error:
        found.problems.append(str(error))
        return found
    finally:
        await runner.aclose()
    found.connected = True
    found.driver = {"ray": info.driver[0], "python": info.driver[1]}
    found.cluster = {
        "address": info.address,
        "ray": info.ray_version,
        "python": info.python_version,
    }
    found.nodes = [
        {"id": n.node_id, "address": n.address, "head": n.head, "resources": dict(n.resources)}
        for n in info.nodes
    ]
    largest = {
        key: max((n.resources.get(name, 0.0) for n in info.nodes), default=0.0)
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"))
    }
    for check in checks:
        if not check.tasks or check.interface not in ("api", "hybrid"):
            continue
        config = project.agents.get(check.name) if check.name in project.agents else None
        demand = runner.demand(check.name)
        fits = [n.node_id for n in info.nodes if n.fits(demand)]
        found.agents.append(
            {
                "agent": check.name,
                "on": "actor" if config is not None and runner.uses_actor(config) else "tasks",
                "needs": demand,
                "nodes": fits,
            }
        )
        if not fits:
            found.problems.append(
                f"agent {check.name!r} needs {_amounts(demand)} for each request, and no node "
                f"of the cluster has that much (the most a node has: {_amounts(largest) or 'none'})"
            )
    return found

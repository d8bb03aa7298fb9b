"""The project file's shape, as pydantic models: field names, types and ranges, nothing more.

Every model forbids unknown fields and is strict (``"3"`` is not a number, ``12`` is not a
string). Checks that span fields (a task's agent exists, the graph has no cycle, a ``cli`` agent
has a command) live in :mod:`.checks`, where they can name the exact field and line.

Keys read now but consumed by later features: top-level ``budget`` and ``runner``; per agent
``requests_per_minute``, ``tokens_per_minute``, ``max_concurrency``, ``price`` (USD per million
tokens), ``fallback_on``, ``on_truncated`` and ``resources`` (Ray).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from ..orchestration.agent_registry import AgentCapability, AgentInterface, AgentType
from ..orchestration.task import TaskPriority

__all__ = [
    "AgentSpec",
    "BudgetSpec",
    "CheckRunSpec",
    "DefaultsSpec",
    "McpServerEntry",
    "PriceSpec",
    "ProjectSpec",
    "ResourcesSpec",
    "TaskSpec",
    "model_at",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _name(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _NAME.match(value) or len(value) > 100:
            raise ValueError(
                f"{what} {value!r} must start with a letter or digit and use only letters, "
                "digits, '_', '.' and '-' (at most 100 characters)"
            )
        return value

    return AfterValidator(check)


def _one_of(enum: type[StrEnum], what: str) -> AfterValidator:
    def check(value: str) -> str:
        allowed = [member.value for member in enum]
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


_AUTHOR = re.compile(r"[^<>\n]*[^<>\s][^<>\n]*<[^<>\s]+>\s*\Z")


def _author(value: str) -> str:
    if not _AUTHOR.match(value.strip()):
        raise ValueError(f"commit author {value!r} must be of the form 'Name <email>'")
    return value.strip()


_MCP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


def _mcp_name(value: str) -> str:
    if not _MCP_NAME.match(value):
        raise ValueError(
            f"MCP server name {value!r} must start with a letter or digit and use only letters, "
            "digits, '_' and '-' (at most 64 characters: it goes into tool names)"
        )
    return value


AgentName = Annotated[str, _name("agent name")]
McpServerName = Annotated[str, AfterValidator(_mcp_name)]
TaskId = Annotated[str, _name("task id")]
NonEmptyStr = Annotated[str, AfterValidator(_not_blank)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Priority = Annotated[str, _one_of(TaskPriority, "priority")]


class _Spec(BaseModel):
    # (Empty lists and mappings by default_factory: a default value is deep-copied for every
    # instance, four copies per task.)
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PriceSpec(_Spec):
    """What an agent's model costs, in USD per million tokens."""

    input: NonNegative
    output: NonNegative


class ResourcesSpec(_Spec):
    """What one call of the agent reserves on a Ray cluster."""

    num_cpus: NonNegative | None = None
    num_gpus: NonNegative | None = None


class CheckRunSpec(_Spec):
    """An acceptance check with its own timeout: ``{run: [argv...], timeout: S}``."""

    run: Annotated[list[NonEmptyStr], Field(min_length=1), AfterValidator(lambda v: _argv(v))]
    timeout: Positive | None = None


def _argv(value: list[str]) -> list[str]:
    if any(c.isspace() for c in value[0]):
        words = ", ".join(value[0].split())
        raise ValueError(
            f"a check is an argv (a list of words, no shell), not {value[0]!r}: write [{words}]"
        )
    return value


Argv = Annotated[list[NonEmptyStr], Field(min_length=1), AfterValidator(_argv)]
OnConflict = Literal["fail", "ask"]
CheckItem = Annotated[
    Annotated[Argv, Tag("argv list")] | Annotated[CheckRunSpec, Tag("run mapping")],
    Discriminator(
        lambda value: "run mapping" if isinstance(value, dict | CheckRunSpec) else "argv list"
    ),
]


class AgentSpec(_Spec):
    """One entry under ``agents:``. String fields may use ``${VAR}`` and ``${VAR:-default}``."""

    type: Annotated[str, _one_of(AgentType, "agent type")]
    interface: Annotated[str, _one_of(AgentInterface, "interface")] = "api"
    model: NonEmptyStr | None = None
    api_key: str | None = Field(default=None, repr=False)
    base_url: NonEmptyStr | None = None
    system_prompt: str | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: PositiveInt | None = None
    timeout: Positive | None = None
    capabilities: list[Annotated[str, _one_of(AgentCapability, "capability")]] = Field(
        default_factory=list
    )
    fallbacks: list[AgentName] = Field(default_factory=list)
    enabled: bool = True
    command: Annotated[list[str], Field(min_length=1)] | None = None
    reviewer: AgentName | None = None
    provider: NonEmptyStr | None = None
    description: str = ""
    options: dict[str, JsonValue] = Field(default={}, repr=False)
    # Read now, consumed by rate limiting, budgets, fallbacks and the Ray runner.
    requests_per_minute: Positive | None = None
    tokens_per_minute: PositiveInt | None = None
    max_concurrency: PositiveInt | None = None
    price: PriceSpec | None = None
    fallback_on: Literal["retryable", "any"] = "retryable"
    on_truncated: Literal["accept", "warn", "fail"] = "warn"
    """A reply cut off at ``max_tokens``: ``accept``, ``warn`` (and mark it), ``fail`` the task."""
    resources: ResourcesSpec | None = None
    # The call journal may answer its requests: true (temperature 0 or unset), always, false.
    cache: bool | Literal["always"] | None = None
    # A merge conflict of its task: fail it, or hand it to a person (unset: the project's).
    on_conflict: OnConflict | None = None
    # The agent loop (an api agent with tools): what it may call, and its bounds.
    tools: list[NonEmptyStr] = Field(default_factory=list)
    """Built-in tool names and Python functions (``package.module:function``)."""
    max_turns: PositiveInt = 20
    max_tool_calls: PositiveInt = 100
    tool_timeout: Positive = 60.0
    max_parallel_tools: PositiveInt = 4
    mcp_servers: list[McpServerName] = Field(default_factory=list)
    """Names under the top-level ``mcp_servers:`` whose tools this agent may call."""
    allow_commands: list[NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)]] = Field(
        default_factory=list
    )
    """What ``run_command`` may start: ``"python -m pytest"`` or ``[python, -m, pytest]``."""
    require_sandbox: bool = False
    """``run_command`` refuses to run a command where it cannot cut the network off."""
    approve: list[NonEmptyStr] = Field(default_factory=list)
    """Tools (of ``tools:`` or its MCP servers') whose calls wait for a person's approval."""


class McpServerEntry(_Spec):
    """One entry under ``mcp_servers:``: a stdio server (``command``, ``args``, ``env``,
    ``cwd``) or a streamable HTTP one (``url``, ``headers``). Strings may use ``${VAR}``."""

    command: NonEmptyStr | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    cwd: NonEmptyStr | None = None
    url: NonEmptyStr | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    tools: list[NonEmptyStr] | None = None
    """Allow-list of the server's tool names (default: all it offers)."""
    prefix: str | None = None
    """Before each tool's name (default ``<server>__``; ``""``: none)."""
    startup_timeout: Positive | None = None
    call_timeout: Positive | None = None


class TaskSpec(_Spec):
    """One entry under ``tasks:``. Text is taken literally (no ``${VAR}`` expansion)."""

    id: TaskId
    title: NonEmptyStr
    description: str = ""
    agent: AgentName | None = None
    priority: Priority | None = None
    phase: NonEmptyStr | None = None
    dependencies: list[str] = Field(default_factory=list)
    deliverables: list[str] = Field(default_factory=list)
    success_criteria: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    estimated_hours: NonNegative | None = None
    timeout: Positive | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    # A typed output: a JSON Schema inline, or a .json file's path (read by .output_schemas).
    output_schema: dict[str, JsonValue] | NonEmptyStr | None = None
    output_mode: Literal["auto", "native", "tool", "prompted"] | None = None
    output_retries: Annotated[int, Field(ge=0, le=10)] | None = None
    # Acceptance checks, run in the task's worktree when its agent is done: each an argv
    # (never a shell string) or {run: argv, timeout: S}; a failing one goes back to the agent
    # up to check_attempts times.
    checks: list[CheckItem] = Field(default_factory=list)
    check_attempts: PositiveInt = 2


class DefaultsSpec(_Spec):
    """``defaults:``: what a task gets when it does not say."""

    agent: AgentName | None = None
    max_concurrency: PositiveInt = 4
    timeout: Positive | None = None
    priority: Priority = "medium"


class BudgetSpec(_Spec):
    """``budget:``: the run stops starting new calls once either limit is reached."""

    max_cost_usd: NonNegative | None = None
    max_tokens: PositiveInt | None = None


class ProjectSpec(_Spec):
    """The whole file."""

    project: NonEmptyStr | None = None
    description: str = ""
    defaults: DefaultsSpec = DefaultsSpec()
    agents: Annotated[dict[AgentName, AgentSpec], Field(min_length=1)]
    tasks: Annotated[list[TaskSpec], Field(min_length=1)]
    budget: BudgetSpec | None = None
    runner: Literal["local", "ray"] = "local"
    keep_backups: PositiveInt = 5
    # The git repository writing tasks change (default: the project file's folder), the branch
    # a run starts from (default: the one checked out), the branch it works on (default
    # coditect/<project>), what a merge conflict does, who commits.
    repo: NonEmptyStr | None = None
    base_branch: NonEmptyStr | None = None
    integration_branch: NonEmptyStr | None = None
    on_conflict: OnConflict = "fail"
    commit_author: Annotated[str, AfterValidator(_author)] | None = None
    workspace: NonEmptyStr | None = None
    """The folder tools work in (relative to the project file's; default: that folder)."""
    mcp_servers: dict[McpServerName, McpServerEntry] = Field(default_factory=dict)


def model_at(path: tuple[object, ...]) -> type[BaseModel] | None:
    """The spec model of the mapping at ``path`` (``("tasks", 2)`` -> :class:`TaskSpec`)."""
    match path:
        case ():
            return ProjectSpec
        case ("defaults",):
            return DefaultsSpec
        case ("budget",):
            return BudgetSpec
        case ("tasks", int()):
            return TaskSpec
        case ("tasks", int(), "checks", int()):
            return CheckRunSpec
        case ("agents", str()):
            return AgentSpec
        case ("agents", str(), "price"):
            return PriceSpec
        case ("agents", str(), "resources"):
            return ResourcesSpec
        case ("mcp_servers", str()):
            return McpServerEntry
    return None

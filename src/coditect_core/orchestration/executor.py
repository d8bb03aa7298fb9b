"""``TaskExecutor``: run one task on one agent, whatever the agent is, and say what happened.

The plan's centre (steps 4.1 to 4.5). ``_llm_factory`` maps each ``AgentType`` to the
``BaseLlm`` class registered under its value in :mod:`coditect_core.llm_abstractions.registry`
(built-ins and ``coditect_core.llms`` plugins alike); a ``custom`` agent names its provider.

Each agent's requests go through one pipeline, built on first use and reused by every task
(its client, its connection pool and its limits are the agent's), closed by
:meth:`TaskExecutor.aclose`::

    PricedLlm(LimitedLlm(runner.open(agent, spec)))      # per agent: price, limits, placement
    AttemptedLlm(that, attempts, agent, retry_policy)    # per execution: retries as attempts

``runner.open`` builds the provider's LLM here (:class:`~.runners.local.LocalRunner`) or a
stand-in whose requests run on Ray (:class:`~.runners.ray.RayRunner`); command and script agents
always run here. :meth:`TaskExecutor.execute` dispatches on the agent's interface
(:mod:`.handlers`) and tries the agent's fallbacks when it fails (:meth:`~TaskExecutor.execute`
says which failures): the one fallback loop. The task's timeout (``task_timeouts``) bounds the
whole execution. Whatever goes wrong becomes a FAILED :class:`ExecutionResult` with a clear
error; only cancellation propagates, and a failure of the ``on_attempt`` hook (recording an
attempt), which is not the task's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import AgentError, CoditectError, LlmConfigurationError, LlmError, LlmResponseError
from ..llm_abstractions.base_llm import BaseLlm
from ..llm_abstractions.command import CommandLlm
from ..llm_abstractions.datatypes import FinishReason
from ..llm_abstractions.limits import AgentGate, AgentLimits, LimitedLlm
from ..llm_abstractions.messages import Messages
from ..llm_abstractions.pricing import PriceBook, PricedLlm
from ..llm_abstractions.registry import get_llm_class
from ..llm_abstractions.retry import NO_RETRY, RetryPolicy
from ..llm_abstractions.spec import LlmSpec
from ..secrets import Secret
from ..tools.base import Toolset
from .agent_registry import AgentConfig, AgentInterface, AgentRegistry, AgentType
from .attempts import AttemptHook, Attempts, RetryWaitHook, ToolHook, error_text
from .execution_result import ExecutionResult, ExecutionStatus
from .handlers import HANDLERS, Execution, Handler
from .journal import (
    CACHE_SETTINGS,
    CallJournal,
    JournaledLlm,
    JournalRequest,
    cache_allowed,
    journal_request,
)
from .prompts import DEFAULT_MAX_CONTEXT_CHARS, UpstreamOutput, upstream_from_mapping
from .runners.base import Runner
from .runners.local import LocalRunner
from .script_protocol import ScriptLlm
from .spend import BudgetGuard
from .task import AgentTask
from .tool_loop import RecordedLoop, run_tool_loop

__all__ = [
    "FALLBACK_ON",
    "ON_TRUNCATED",
    "ExecutionResult",
    "ExecutionStatus",
    "TaskExecutor",
    "falls_back",
]

logger = logging.getLogger(__name__)

Upstream = Sequence[UpstreamOutput] | Mapping[str, str] | None

FALLBACK_ON = ("retryable", "any")
ON_TRUNCATED = ("accept", "warn", "fail")
_WARM = (AgentInterface.API, AgentInterface.CLI, AgentInterface.HYBRID)


def _retry_policy(value: Any) -> RetryPolicy | None:
    """An ``options: {retry: ...}`` value as a policy (a mapping comes from a project file)."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    if isinstance(value, Mapping):
        try:
            return RetryPolicy(**value)
        except (TypeError, ValueError) as error:
            raise AgentError(f"options.retry: {error}") from None
    raise AgentError(f"options.retry must be a mapping, not {type(value).__name__}")


def falls_back(error: LlmError, fallback_on: str) -> bool:
    """Whether ``error`` (after the agent's retries) sends the task to the next fallback."""
    return fallback_on == "any" or error.retryable or isinstance(error, LlmConfigurationError)


def _journal_request(
    spec: LlmSpec, messages: Messages, options: Mapping[str, Any] | None
) -> JournalRequest:
    """The journal's request of a call of the LLM ``spec`` builds (see
    :meth:`TaskExecutor.journal_request`)."""
    return journal_request(
        spec.cls.provider,
        spec.model or spec.cls.default_model or "",
        spec.settings.get("base_url"),
        spec.settings,
        messages,
        options,
    )


class _LlmFactory(dict[AgentType, type[BaseLlm]]):
    """``AgentType -> BaseLlm class``, filled from the provider registry on first lookup.

    Lazy so that a backend's module (and a plugin) is imported only when an agent needs it.
    Entries may be set by hand (tests, embedding applications). ``custom`` has no fixed class.
    """

    def __missing__(self, key: AgentType) -> type[BaseLlm]:
        agent_type = AgentType(key)
        if agent_type is AgentType.CUSTOM:
            raise KeyError(key)
        cls = get_llm_class(agent_type.value)
        self[agent_type] = cls
        return cls

    def get(self, key: AgentType, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass(frozen=True)
class _AgentLlm:
    """An agent's request pipeline, as built for its settings of the time."""

    agent: AgentConfig
    placed: BaseLlm  # what the runner opened: the provider's LLM, or a stand-in
    pipeline: BaseLlm  # priced, limited
    spec: LlmSpec  # how it was built (its settings key the call journal's requests)


class TaskExecutor:
    """Runs tasks on the agents of ``registry``.

    ``default_agent`` takes tasks that name none (see :meth:`AgentRegistry.resolve`).
    ``limits`` (agent name -> :class:`AgentLimits`) gate each agent's requests; ``prices``
    prices them (default: the shipped table); ``fallback_on`` (agent name -> ``"retryable"`` or
    ``"any"``) says which failures send a task to the agent's fallbacks; ``on_truncated`` (agent
    name -> ``"accept"``, ``"warn"``, the default, or ``"fail"``) what a reply cut off at
    ``max_tokens`` does (``fail``: the agent failed, with an error naming it and its
    ``max_tokens``; its fallbacks only with ``fallback_on: any``); ``task_timeouts``
    (task id -> seconds) bound a task's whole execution; ``runner`` places the requests
    (default: this process). ``cache`` (agent name -> ``on``, ``off`` or ``always``) says whose
    requests the call journal may answer (:func:`~.journal.cache_allowed`); ``journal`` (set
    per run, with ``run_cache`` for ``--cache``) journals every request of an LLM, command or
    script agent (:mod:`.journal`). ``workspace`` is the folder an agent's tools work in
    (default: the current directory); ``budget_guard`` (set per run) lets an agent loop stop
    before a call that would pass the run's budget. ``mcp_servers`` (agent name -> server
    name -> a factory of a new, unopened toolset) are the MCP servers each agent's loop opens
    and closes; an agent with some runs the agent loop, with or without ``tools``.
    """

    def __init__(
        self,
        registry: AgentRegistry | None = None,
        *,
        default_agent: str | None = None,
        max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
        limits: Mapping[str, AgentLimits] | None = None,
        prices: PriceBook | None = None,
        fallback_on: Mapping[str, str] | None = None,
        on_truncated: Mapping[str, str] | None = None,
        task_timeouts: Mapping[str, float] | None = None,
        runner: Runner | None = None,
        cache: Mapping[str, str] | None = None,
        workspace: Path | None = None,
        mcp_servers: Mapping[str, Mapping[str, Callable[[], Toolset]]] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else AgentRegistry()
        self.default_agent = default_agent
        self.max_context_chars = max_context_chars
        self.prices = prices if prices is not None else PriceBook()
        self.fallback_on: dict[str, str] = dict(fallback_on or {})
        for name, mode in self.fallback_on.items():
            if mode not in FALLBACK_ON:
                raise AgentError(f"agent {name!r}: fallback_on must be one of {FALLBACK_ON}")
        self.on_truncated: dict[str, str] = dict(on_truncated or {})
        for name, mode in self.on_truncated.items():
            if mode not in ON_TRUNCATED:
                raise AgentError(f"agent {name!r}: on_truncated must be one of {ON_TRUNCATED}")
        self.task_timeouts: dict[str, float] = dict(task_timeouts or {})
        self.limits: dict[str, AgentLimits] = dict(limits or {})
        self.runner: Runner = runner if runner is not None else LocalRunner()
        self.cache: dict[str, str] = dict(cache or {})
        for name, setting in self.cache.items():
            if setting not in CACHE_SETTINGS:
                raise AgentError(f"agent {name!r}: cache must be one of {CACHE_SETTINGS}")
        self.journal: CallJournal | None = None
        self.run_cache = False
        self.workspace = workspace
        self.mcp_servers: dict[str, dict[str, Callable[[], Toolset]]] = {
            name: dict(servers) for name, servers in (mcp_servers or {}).items() if servers
        }
        self.budget_guard: BudgetGuard | None = None  # set by a run with a budget
        self.loop_resumes: dict[str, RecordedLoop] = {}  # task id -> a killed loop to go on
        self._llm_factory: dict[AgentType, type[BaseLlm]] = _LlmFactory()
        self._gates: dict[str, AgentGate] = {}
        self._llms: dict[str, _AgentLlm] = {}
        self._retired: list[BaseLlm] = []
        self._handlers: dict[AgentInterface, Handler] = {
            AgentInterface.API: self._execute_api,
            **HANDLERS,
        }

    # ------------------------------------------------------------------ agents and LLMs

    def resolve_agent(self, task: AgentTask, agent: str | AgentConfig | None = None) -> AgentConfig:
        """The agent that runs ``task``: ``agent`` itself when already resolved, else
        :meth:`AgentRegistry.resolve` (with the executor's default)."""
        if isinstance(agent, AgentConfig):
            return agent
        return self.registry.resolve(task, agent, default=self.default_agent)

    def gate(self, agent: str) -> AgentGate:
        """The gate every request of ``agent`` passes (its limits, and any 429 pause)."""
        gate = self._gates.get(agent)
        if gate is None:
            gate = self._gates[agent] = AgentGate(self.limits.get(agent))
        return gate

    def llm_class(self, agent: AgentConfig) -> type[BaseLlm]:
        """The class of ``agent``'s LLM: the factory's for its type (its provider's for
        ``custom``), or the command or script backend of a ``cli``/``script`` agent."""
        if agent.interface is AgentInterface.SCRIPT:
            return ScriptLlm
        if agent.command and agent.interface in (AgentInterface.CLI, AgentInterface.HYBRID):
            return CommandLlm
        if agent.agent_type is AgentType.CUSTOM:
            if not agent.provider:
                raise AgentError(f"agent {agent.name!r}: type custom needs a provider")
            return get_llm_class(agent.provider)
        llm_class = self._llm_factory.get(agent.agent_type)
        if llm_class is None:
            raise AgentError(
                f"no LLM implementation found for agent type {agent.agent_type.value!r}"
            )
        return llm_class

    def spec(self, agent: AgentConfig) -> LlmSpec:
        """How to build ``agent``'s LLM: its class and settings."""
        cls = self.llm_class(agent)
        settings: dict[str, Any] = {
            name: value
            for name, value in (
                ("base_url", agent.base_url),
                ("timeout", agent.timeout),
                ("max_tokens", agent.max_tokens),
                ("temperature", agent.temperature),
            )
            if value is not None
        }
        settings.update(agent.provider_options)
        if "retry" in settings:
            settings["retry"] = _retry_policy(settings["retry"])
        if issubclass(cls, CommandLlm):
            settings["command"] = agent.command
        key = agent.api_key_value()
        return LlmSpec(cls, agent.model, Secret(key) if key else None, settings)

    def _agent_llm(self, agent: AgentConfig) -> _AgentLlm:
        """``agent``'s pipeline, built on first use and reused (rebuilt if it was
        re-registered with new settings)."""
        built = self._llms.get(agent.name)
        if built is not None and built.agent is agent:
            return built
        if built is not None:
            self._retired.append(built.placed)
        spec = self.spec(agent)
        # Commands run here whatever the runner: their working directory and programs are ours.
        placed = spec.build() if issubclass(spec.cls, CommandLlm) else self.runner.open(agent, spec)
        pipeline = PricedLlm(
            LimitedLlm(placed, self.gate(agent.name), max_pause=placed.retry.max_delay),
            self.prices,
            agent=agent.name,
        )
        built = self._llms[agent.name] = _AgentLlm(agent, placed, pipeline, spec)
        logger.debug("built %r for agent %s", pipeline, agent.name)
        return built

    def get_llm(self, agent: str | AgentConfig) -> BaseLlm:
        """``agent``'s LLM: one instance per agent, made on first use (by the runner: the
        provider's, or a stand-in whose requests run elsewhere; the command backend of a
        ``cli`` or ``script`` agent). The innermost step of :meth:`pipeline`."""
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        return self._agent_llm(config).placed

    def pipeline(self, agent: str | AgentConfig) -> BaseLlm:
        """``agent``'s request pipeline: its LLM, limited and priced. Calling it retries by the
        agent's policy; an execution calls it through an :class:`~.attempts.AttemptedLlm` so
        that each request is an attempt."""
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        return self._agent_llm(config).pipeline

    def journaled(self, agent: AgentConfig, task: AgentTask) -> BaseLlm:
        """:meth:`pipeline` for one execution of ``task``: its requests journaled (and answered
        from the journal where :func:`~.journal.cache_allowed`) when a journal is set."""
        built = self._agent_llm(agent)
        if self.journal is None:
            return built.pipeline
        use_cache = self.may_use_cache(agent, run_cache=self.run_cache)
        return JournaledLlm(
            built.pipeline,
            self.journal,
            request=lambda messages, options: _journal_request(built.spec, messages, options),
            task_id=task.task_id,
            use_cache=use_cache,
        )

    def may_use_cache(self, agent: AgentConfig, *, run_cache: bool) -> bool:
        """Whether the call journal may answer ``agent``'s requests in a run that is not a
        replay (``run_cache``: ``--cache``; :func:`~.journal.cache_allowed`). A command or script
        acts (it may write files): ``--cache`` leaves it alone; only its own ``cache:`` setting
        lets the journal answer for it."""
        acts = issubclass(self.llm_class(agent), CommandLlm)
        return cache_allowed(self.cache.get(agent.name), run_cache and not acts, agent.temperature)

    def journal_request(
        self,
        agent: AgentConfig,
        messages: Messages,
        options: Mapping[str, Any] | None = None,
    ) -> JournalRequest:
        """The call journal's request (its key: :func:`~.journal.journal_request`) for
        ``messages`` sent to ``agent`` with the call's ``options``, from the agent's spec: no
        LLM is built (a forecast can tell which requests the journal would answer)."""
        return _journal_request(self.spec(agent), messages, options)

    def retry_policy(self, agent: str | AgentConfig) -> RetryPolicy:
        """How ``agent``'s calls are retried: its LLM's policy, or ``options.retry``."""
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        if config.interface is AgentInterface.INTERACTIVE:
            return NO_RETRY
        return self._agent_llm(config).placed.retry

    def warm_up(self, tasks: Iterable[AgentTask]) -> list[str]:
        """Make the LLM clients of the agents ``tasks`` use (their fallbacks and reviewers
        too) now; returns the agents made ready.

        Call it before calls are in flight: a provider SDK is imported, and its client built,
        on first use, which holds the event loop for up to a second or more; a call already
        waiting for its answer then could time out for nothing. An agent that cannot be made
        ready (no key, SDK missing) is skipped: its task's call reports why.
        """
        names: dict[str, None] = {}
        for task in tasks:
            try:
                names[self.resolve_agent(task).name] = None
            except AgentError:
                continue  # its execution reports it
        for name in list(names):
            agent = self.registry.get(name)
            for other in (*agent.fallbacks, agent.reviewer):
                if other is not None and other in self.registry:
                    names[other] = None
        ready = []
        for name in names:
            agent = self.registry.get(name)
            if not agent.enabled or agent.interface not in _WARM:
                continue
            try:
                self.get_llm(agent).prepare()  # the SDK import and the client, on this loop
            except Exception as error:  # its call will fail and say why
                logger.debug("agent %s not warmed up: %s", name, error)
                continue
            ready.append(name)
        return ready

    def ready_agents(self) -> list[str]:
        """The agents whose pipeline has been built, in the order they were."""
        return list(self._llms)

    async def aclose(self) -> None:
        """Close every LLM the executor built."""
        llms = [built.placed for built in self._llms.values()] + self._retired
        self._llms.clear()
        self._retired.clear()
        await asyncio.gather(*(llm.aclose() for llm in llms), return_exceptions=True)

    async def __aenter__(self) -> TaskExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ execution

    async def execute(
        self,
        task: AgentTask,
        agent: str | AgentConfig | None = None,
        mode: AgentInterface | str | None = None,
        *,
        upstream: Upstream = None,
        on_attempt: AttemptHook | None = None,
        on_wait: RetryWaitHook | None = None,
        on_tool: ToolHook | None = None,
    ) -> ExecutionResult:
        """Run ``task`` on ``agent`` (a name, or the agent already resolved; default: the
        task's, then the executor's).

        ``mode`` overrides the agent's interface. ``upstream`` is what the task's dependencies
        produced (:class:`UpstreamOutput` items, or ``{task_id: output}``), given to the model
        as context. ``on_attempt(task, ended, agent)`` is awaited before each further attempt
        (a retry or a fallback) goes out, with the attempt that ended; the result keeps them
        too (``earlier_attempts``). ``on_wait(task, agent, error, attempt, wait)`` is awaited
        when a failed request is to be retried after ``wait`` seconds, before the wait.
        ``on_tool(task, turn, call)`` is awaited when an agent loop's tool call has run. The
        result describes the last attempt (its agent, usage and cost).

        When the agent fails with a retryable error after its retries, or is unavailable (not
        installed, no key, command not found), its ``fallbacks`` are tried in order; other
        errors (bad request, authentication) fall back only with ``fallback_on: any``. Never
        raises except on cancellation: failures are FAILED results.
        """
        started = time.monotonic()
        named = agent.name if isinstance(agent, AgentConfig) else agent
        result = ExecutionResult(
            task.task_id,
            agent=named or task.agent or self.default_agent,
            status=ExecutionStatus.IN_PROGRESS,
            started_at=datetime.now(UTC),
        )
        attempts = Attempts(
            task,
            on_attempt,
            timeout=self.task_timeouts.get(task.task_id),
            on_wait=on_wait,
            on_tool=on_tool,
        )
        if isinstance(upstream, Mapping):
            upstream = upstream_from_mapping(upstream)
        execution = Execution(self, task, upstream or (), result, attempts)
        try:
            config = attempts.agent = self.resolve_agent(task, agent)
            interface = self._interface(mode) if mode is not None else config.interface
            await self._run_with_fallbacks(execution, config, interface)
        except (CoditectError, ValueError, OSError) as error:
            if error is attempts.hook_error:
                raise  # recording the attempt failed (the store): not this task's failure
            self._fail(execution, error)
        except Exception as error:  # a bug or an unmapped failure: still only this task's
            if error is attempts.hook_error:
                raise
            logger.exception("unexpected error executing task %s", task.task_id)
            self._fail(execution, error)
        else:
            result.usage = attempts.usage if attempts.usage is not None else result.usage
            result.cost_usd = attempts.cost
            result.cached = bool(attempts.cached)
        result.attempts = attempts.requests
        result.earlier_attempts = attempts.ended
        if attempts.lost:
            result.metadata[self.runner.name] = {
                "lost_calls": len(attempts.lost),
                "lost": attempts.lost,
            }
        result.duration_seconds = time.monotonic() - started
        result.completed_at = datetime.now(UTC)
        return result

    async def _execute_api(self, execution: Execution, agent: AgentConfig) -> None:
        """The plan's step 4.3: the agent's LLM (the ``_llm_factory`` class, one instance per
        agent, behind its pipeline) is sent the task's messages, and its answer is the task's
        (a typed task's: its validated value, :meth:`Execution.ask_typed`).
        An agent with ``tools`` runs the agent loop instead (:func:`.tool_loop.run_tool_loop`):
        each model turn through the same pipeline, the loop's final answer the task's."""
        if agent.tools or self.mcp_servers.get(agent.name):
            if execution.task.output_schema is not None:
                raise AgentError(
                    f"task {execution.task.task_id!r} has an output_schema, but agent "
                    f"{agent.name!r} runs the agent loop (it has tools or MCP servers): a typed "
                    "output through the agent loop is not supported yet; use an agent without "
                    "tools for it"
                )
            await run_tool_loop(execution, agent)
            return
        execution.answered(await execution.ask_typed(agent, execution.messages(agent)))

    async def _run_with_fallbacks(
        self, execution: Execution, first: AgentConfig, interface: AgentInterface
    ) -> None:
        """Run on ``first``, then on its fallbacks in order while the failure calls for one;
        raise the last error if none succeeds."""
        result, attempts = execution.result, execution.attempts
        agent = first
        mode = self.fallback_on.get(first.name, "retryable")
        queue = list(first.fallbacks)
        while True:
            result.agent = agent.name
            result.interface = interface.value
            try:
                await self._handlers[interface](execution, agent)
                self._check_truncated(execution, agent)
                return
            except LlmError as error:
                attempts.note(agent, error)
                following = self._next_fallback(queue, first, agent, error, mode, attempts)
                if following is None:
                    raise
                logger.info(
                    "task %s: %s failed (%s); falling back to %s",
                    execution.task.task_id,
                    agent.name,
                    error,
                    following.name,
                )
            await attempts.begin(following)
            result.fallback_from = first.name
            agent, interface = following, following.interface

    def _next_fallback(
        self,
        queue: list[str],
        first: AgentConfig,
        failed: AgentConfig,
        error: LlmError,
        mode: str,
        attempts: Attempts,
    ) -> AgentConfig | None:
        """The next usable fallback, taken from ``queue``; ``None`` if the chain ends here."""
        if not falls_back(error, mode):
            return None
        left = attempts.time_left()
        if left is not None and left <= 0:
            return None
        while queue:
            name = queue.pop(0)
            try:
                agent = self.registry.get(name)
            except AgentError:
                logger.warning("agent %s: fallback %r is not defined; skipped", first.name, name)
                continue
            if agent.enabled and agent is not failed:
                return agent
        return None

    @staticmethod
    def _interface(mode: AgentInterface | str) -> AgentInterface:
        try:
            return AgentInterface(mode)
        except ValueError:
            allowed = ", ".join(i.value for i in AgentInterface)
            raise AgentError(f"unknown mode {mode!r}; expected one of {allowed}") from None

    def _check_truncated(self, execution: Execution, agent: AgentConfig) -> None:
        """A reply cut off at ``max_tokens`` (finish reason ``length``): accepted, warned of,
        or (``on_truncated: fail``) the agent's failure."""
        result = execution.result
        if result.finish_reason != FinishReason.LENGTH:
            return
        mode = self.on_truncated.get(agent.name, "warn")
        limit = f"max_tokens={agent.max_tokens}" if agent.max_tokens else "its max_tokens"
        if mode == "fail":
            raise LlmResponseError(
                f"agent {agent.name!r}: the reply was cut off at {limit} (on_truncated: fail); "
                "raise the agent's max_tokens or ask for less",
                retryable=False,
            )
        if mode == "warn":
            logger.warning(
                "task %s: agent %s's reply was cut off at %s (truncated; on_truncated: warn)",
                execution.task.task_id,
                agent.name,
                limit,
            )

    @staticmethod
    def _fail(execution: Execution, error: BaseException) -> None:
        result, attempts = execution.result, execution.attempts
        result.status = ExecutionStatus.FAILED
        agent = attempts.agent
        if agent is not None:
            attempts.note(agent, error)
            failure = attempts.failure
            if failure is not None and failure[1] is not None:
                result.model = failure[1]
            result.cost_usd = attempts.final_cost()
        else:
            result.cost_usd = 0.0  # no agent, no request
        if attempts.usage is not None:
            result.usage = attempts.usage
        result.error = error_text(error, agent)
        logger.info("task %s failed on %s: %s", result.task_id, result.agent, result.error)

    async def execute_parallel(
        self,
        items: Iterable[tuple[AgentTask, str | None] | AgentTask],
        max_concurrent: int = 10,
    ) -> list[ExecutionResult]:
        """Execute ``(task, agent)`` pairs (or bare tasks) with at most ``max_concurrent`` at once.

        Results come back in the order of ``items``; one failure never cancels the others.
        """
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        semaphore = asyncio.Semaphore(max_concurrent)

        async def one(task: AgentTask, agent: str | None) -> ExecutionResult:
            async with semaphore:
                return await self.execute(task, agent)

        pairs = [(item, None) if isinstance(item, AgentTask) else item for item in items]
        return list(await asyncio.gather(*(one(task, agent) for task, agent in pairs)))

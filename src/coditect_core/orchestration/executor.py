"""``TaskExecutor``: run one task on one agent, whatever the agent is, and say what happened.

The plan's centre (steps 4.1 to 4.5). ``_llm_factory`` maps each ``AgentType`` to the
``BaseLlm`` class registered under its value in :mod:`coditect_core.llm_abstractions.registry`
(built-ins and ``coditect_core.llms`` plugins alike); a ``custom`` agent names its provider.
One LLM instance per agent is created on first use, reused by every task, and closed by
:meth:`TaskExecutor.aclose`.

:meth:`TaskExecutor.execute` dispatches on the agent's interface (``api``, ``cli``, ``script``,
``interactive``, ``hybrid``; the handlers are in :mod:`.interfaces`). Whatever goes wrong
(unknown or disabled agent, missing key, provider error, a crashing command) becomes a FAILED
:class:`ExecutionResult` with a clear error; only cancellation propagates, and a failure of
the ``on_attempt`` hook (recording an attempt), which is not the task's.

Reliability lives here too (the requests themselves: :mod:`.calls`):

* retries by the agent's policy (its LLM's ``retry``, or ``options: {retry: {...}}``), driven
  by the executor so that every request passes the agent's limits (:mod:`.limits`) and is an
  attempt of its own in the record;
* fallbacks: when an agent fails with a retryable error after its retries, or is unavailable
  (not installed, no key, command not found), its ``fallbacks`` are tried in order; other
  errors (bad request, authentication) fall back only with ``fallback_on: any``;
* timeouts: the agent's ``timeout`` bounds each call, the task's (``task_timeouts``) its whole
  execution; a call cut by either is cancelled (connection closed, process group killed); one
  cut by the agent's timeout is retried;
* cost: every successful request is priced (:mod:`.pricing`); ``metadata["cost"]`` of a result
  is the cost of the attempt it closes (``None``: unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from ..errors import AgentError, CoditectError, LlmConfigurationError, LlmError
from ..llm_abstractions.base_llm import BaseLlm
from ..llm_abstractions.command import CommandLlm
from ..llm_abstractions.registry import get_llm_class
from ..llm_abstractions.retry import NO_RETRY, RetryPolicy
from .agent_registry import (
    AgentCapability,
    AgentConfig,
    AgentInterface,
    AgentRegistry,
    AgentType,
)
from .calls import ATTEMPT_HOOK, AttemptHook, Attempts, error_text
from .execution_result import ExecutionResult, ExecutionStatus
from .interfaces import InterfaceHandlers
from .limits import AgentGate, AgentLimits
from .pricing import PriceBook
from .prompts import (
    DEFAULT_MAX_CONTEXT_CHARS,
    UpstreamOutput,
    upstream_from_mapping,
)
from .task import AgentTask

__all__ = ["ExecutionResult", "ExecutionStatus", "LlmClassHook", "TaskExecutor"]

logger = logging.getLogger(__name__)

_CAPABILITY_VALUES = frozenset(c.value for c in AgentCapability)
_AGENT_OF = attrgetter("agent")

LlmClassHook = Callable[[AgentConfig, type[BaseLlm]], type[BaseLlm]]
"""``hook(agent, cls)``: the class to build ``agent``'s LLM with instead of ``cls``."""
_INTERFACE_NAMES = {i: i.value for i in AgentInterface}

Upstream = Sequence[UpstreamOutput] | Mapping[str, str] | None

_WARM = (AgentInterface.API, AgentInterface.CLI, AgentInterface.HYBRID)
_ONE_TRY = RetryPolicy(max_attempts=1, deadline=None)  # the executor drives the retries
FALLBACK_ON = ("retryable", "any")


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

    def get(self, key: AgentType, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


Handler = Callable[
    [AgentTask, AgentConfig, "ExecutionResult", Sequence[UpstreamOutput], Attempts],
    Awaitable["ExecutionResult"],
]


class TaskExecutor(InterfaceHandlers):
    """Runs tasks on the agents of ``registry``.

    ``default_agent`` takes tasks that name none; failing that, a task's tags are matched to
    agent capabilities, and a registry with a single enabled agent uses it.

    ``limits`` (agent name -> :class:`AgentLimits`) gate each agent's requests; ``prices``
    prices them (default: the shipped table); ``fallback_on`` (agent name -> ``"retryable"`` or
    ``"any"``) says which failures send a task to the agent's fallbacks; ``task_timeouts``
    (task id -> seconds) bound a task's whole execution.

    ``llm_class_hook(agent, cls)``, when set, may replace the class an agent's LLM is built
    with (``cls``: the one the factory picked): a runner that places requests elsewhere
    (:class:`~.runners.ray.RayRunner`) sets it before the first call.
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
        task_timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else AgentRegistry()
        self.default_agent = default_agent
        self.max_context_chars = max_context_chars
        self.prices = prices if prices is not None else PriceBook()
        self.fallback_on: dict[str, str] = dict(fallback_on or {})
        for name, mode in self.fallback_on.items():
            if mode not in FALLBACK_ON:
                raise AgentError(f"agent {name!r}: fallback_on must be one of {FALLBACK_ON}")
        self.task_timeouts: dict[str, float] = dict(task_timeouts or {})
        self._gates: dict[str, AgentGate] = {}
        for name, agent_limits in (limits or {}).items():
            self.set_limits(name, agent_limits)
        self.llm_class_hook: LlmClassHook | None = None
        self._llm_factory: dict[AgentType, type[BaseLlm]] = _LlmFactory()
        self._llms: dict[tuple[str, bool], tuple[AgentConfig, BaseLlm, RetryPolicy]] = {}
        self._retired: list[BaseLlm] = []
        self._handlers: dict[AgentInterface, Handler] = {
            AgentInterface.API: self._execute_api,
            AgentInterface.CLI: self._execute_cli,
            AgentInterface.SCRIPT: self._execute_script,
            AgentInterface.INTERACTIVE: self._execute_interactive,
            AgentInterface.HYBRID: self._execute_hybrid,
        }

    # ------------------------------------------------------------------ agents and LLMs

    def set_limits(self, agent: str, limits: AgentLimits | None) -> None:
        """Gate ``agent``'s requests by ``limits`` (``None`` or no limit set: no gate)."""
        if limits is None or not limits.active:
            self._gates.pop(agent, None)
        else:
            self._gates[agent] = AgentGate(limits)

    def gate(self, agent: str) -> AgentGate | None:
        """The gate of ``agent``'s requests, if it has limits (or was paused by a 429)."""
        return self._gates.get(agent)

    def resolve_agent(self, task: AgentTask, agent: str | None = None) -> AgentConfig:
        """The agent that runs ``task``; :class:`AgentError` if none can, or it is disabled."""
        name = agent or task.agent or self.default_agent
        config = self.registry.get(name) if name else self._guess_agent(task)
        if not config.enabled:
            raise AgentError(f"agent {config.name!r} is disabled")
        return config

    def _guess_agent(self, task: AgentTask) -> AgentConfig:
        capabilities = [t for t in task.tags if t in _CAPABILITY_VALUES]
        if capabilities:
            found = self.registry.recommend(capabilities)
            if found is not None:
                return found
        enabled = self.registry.list(enabled_only=True)
        if len(enabled) == 1:
            return enabled[0]
        known = ", ".join(self.registry.names()) or "none registered"
        raise AgentError(
            f"task {task.task_id!r} names no agent and there is no default agent (agents: {known})"
        )

    def _llm_class(self, agent: AgentConfig) -> type[BaseLlm]:
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

    def get_llm(self, agent: str | AgentConfig) -> BaseLlm:
        """The LLM instance an agent's calls go through (its command backend for a cli agent).

        It makes one request per call: the executor drives the agent's retries itself (the
        policy is :meth:`retry_policy`).
        """
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        return self._get_llm(config, via_command=config.interface is AgentInterface.CLI)[0]

    def retry_policy(self, agent: str | AgentConfig) -> RetryPolicy:
        """How the executor retries ``agent``'s calls."""
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        if config.interface is AgentInterface.SCRIPT:
            return _retry_policy(config.provider_options.get("retry")) or NO_RETRY
        return self._get_llm(config, via_command=config.interface is AgentInterface.CLI)[1]

    def _get_llm(
        self, agent: AgentConfig, *, via_command: bool = False
    ) -> tuple[BaseLlm, RetryPolicy]:
        """The agent's LLM instance and retry policy, created on first use and reused."""
        key = (agent.name, via_command)
        cached = self._llms.get(key)
        if cached is not None:
            if cached[0] is agent:
                return cached[1], cached[2]
            self._retired.append(cached[1])  # the agent was re-registered: new settings
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
        llm: BaseLlm
        if via_command:
            llm = CommandLlm(agent.command, model=agent.model, **settings)
        else:
            cls = self._llm_class(agent)
            if self.llm_class_hook is not None:
                cls = self.llm_class_hook(agent, cls)
            llm = cls(model=agent.model, api_key=agent.api_key_value(), **settings)
        policy, llm.retry = llm.retry, _ONE_TRY
        self._llms[key] = (agent, llm, policy)
        logger.debug("created %r for agent %s", llm, agent.name)
        return llm, policy

    def warm_up(self, tasks: Iterable[AgentTask]) -> list[str]:
        """Make the LLM clients of the agents ``tasks`` use (their fallbacks and reviewers
        too) now; returns the agents made ready.

        Call it before calls are in flight: a provider SDK is imported, and its client built,
        on first use, which holds the event loop for up to a second or more; a call already
        waiting for its answer then could time out for nothing. An agent that cannot be made
        ready (no key, SDK missing) is skipped: its task's call reports why.
        """
        tasks = list(tasks)
        names = dict.fromkeys(map(_AGENT_OF, tasks))  # (one C-level pass: runs of 10,000s)
        if "" in names or None in names:  # no agent named: the default's, or a guess by tags
            names = {name: None for name in names if name}
            if self.default_agent:
                names[self.default_agent] = None
            else:
                for task in tasks:
                    if not task.agent:
                        with contextlib.suppress(AgentError):
                            names[self.resolve_agent(task).name] = None
        ready = []
        for name in list(names):
            try:
                agent = self.registry.get(name)
            except AgentError:
                continue
            for other in (*agent.fallbacks, agent.reviewer):
                if other is not None:
                    names[other] = None
        for name in names:
            try:
                agent = self.registry.get(name)
                if not agent.enabled or agent.interface not in _WARM:
                    continue
                llm = self._get_llm(agent, via_command=agent.interface is AgentInterface.CLI)[0]
                llm.prepare()  # the SDK import and the client, on this loop
            except Exception as error:  # its call will fail and say why
                logger.debug("agent %s not warmed up: %s", name, error)
                continue
            ready.append(name)
        return ready

    async def aclose(self) -> None:
        """Close every LLM instance the executor created."""
        llms = [entry[1] for entry in self._llms.values()] + self._retired
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
        agent: str | None = None,
        mode: AgentInterface | str | None = None,
        *,
        upstream: Upstream = None,
        on_attempt: AttemptHook | None = None,
    ) -> ExecutionResult:
        """Run ``task`` on ``agent`` (default: the task's, then the executor's).

        ``mode`` overrides the agent's interface. ``upstream`` is what the task's dependencies
        produced (:class:`UpstreamOutput` items, or ``{task_id: output}``), given to the model
        as context. ``on_attempt(task, ended, agent)`` (default: :data:`.calls.ATTEMPT_HOOK`)
        is awaited before each further attempt (a retry or a fallback) goes out, with the
        attempt that ended; without one, the ended attempts are in the result's
        ``metadata["earlier_attempts"]``. The result returned describes the last attempt (its
        agent, usage and cost). Never raises except on cancellation: failures are FAILED
        results.
        """
        started = time.monotonic()
        result = ExecutionResult(
            task.task_id,
            agent=agent or task.agent or self.default_agent,
            status=ExecutionStatus.IN_PROGRESS,
            started_at=datetime.now(UTC),
        )
        attempts = Attempts(task, on_attempt or ATTEMPT_HOOK.get())
        if self.task_timeouts:
            attempts.limit(self.task_timeouts.get(task.task_id))
        try:
            if isinstance(upstream, dict) or (
                upstream
                and not isinstance(upstream, list | tuple)
                and isinstance(upstream, Mapping)
            ):
                upstream = upstream_from_mapping(upstream)
            config = attempts.agent = self.resolve_agent(task, agent)
            result.agent = config.name
            interface = self._interface(mode) if mode is not None else config.interface
            result.metadata["interface"] = _INTERFACE_NAMES[interface]
            try:
                await self._handlers[interface](task, config, result, upstream or (), attempts)
            except LlmError as error:
                if not config.fallbacks:
                    raise
                await self._fall_back(task, config, result, upstream or (), attempts, error)
        except (CoditectError, ValueError, OSError) as error:
            if error is attempts.hook_error:
                raise  # recording the attempt failed (the store): not this task's failure
            self._fail(result, error, attempts)
        except Exception as error:  # a bug or an unmapped failure: still only this task's
            if error is attempts.hook_error:
                raise
            logger.exception("unexpected error executing task %s", task.task_id)
            self._fail(result, error, attempts)
        else:
            result.usage = attempts.usage if attempts.usage is not None else result.usage
            result.metadata["cost"] = attempts.cost
        result.attempts = attempts.requests
        if attempts.earlier:
            result.metadata["earlier_attempts"] = attempts.earlier
        result.duration_seconds = time.monotonic() - started
        result.completed_at = datetime.now(UTC)
        return result

    async def _run(
        self,
        task: AgentTask,
        agent: AgentConfig,
        interface: AgentInterface,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
    ) -> None:
        result.metadata["interface"] = _INTERFACE_NAMES[interface]
        await self._handlers[interface](task, agent, result, upstream, attempts)

    async def _fall_back(
        self,
        task: AgentTask,
        first: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
        error: LlmError,
    ) -> None:
        """Try ``first``'s fallbacks in order after it failed with ``error``; raise the last
        error if none succeeds (or the error is not one to fall back on)."""
        mode = self.fallback_on.get(first.name, "retryable")
        failed = first
        for name in first.fallbacks:
            if not falls_back(error, mode) or (attempts.deadline and attempts.time_left() <= 0):
                break
            try:
                agent = self.registry.get(name)
            except AgentError:
                logger.warning("agent %s: fallback %r is not defined; skipped", first.name, name)
                continue
            if not agent.enabled or agent is failed:
                continue
            logger.info(
                "task %s: %s failed (%s); falling back to %s",
                task.task_id,
                failed.name,
                error,
                agent.name,
            )
            attempts.note(failed, error)
            await attempts.begin(agent)
            result.agent = agent.name
            result.metadata["fallback_from"] = first.name
            try:
                await self._run(task, agent, agent.interface, result, upstream, attempts)
                return
            except LlmError as next_error:
                error, failed = next_error, agent
        raise error

    @staticmethod
    def _interface(mode: AgentInterface | str) -> AgentInterface:
        try:
            return AgentInterface(mode)
        except ValueError:
            allowed = ", ".join(i.value for i in AgentInterface)
            raise AgentError(f"unknown mode {mode!r}; expected one of {allowed}") from None

    def _fail(self, result: ExecutionResult, error: BaseException, attempts: Attempts) -> None:
        result.status = ExecutionStatus.FAILED
        agent = attempts.agent
        if agent is not None:
            attempts.note(agent, error)
            failure = attempts.failure
            if failure is not None and failure[1] is not None:
                result.model = failure[1]
            result.metadata["cost"] = attempts.final_cost()
        else:
            result.metadata["cost"] = 0.0  # no agent, no request
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

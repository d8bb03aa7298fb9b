"""``TaskExecutor``: run one task on one agent, whatever the agent is, and say what happened.

The plan's centre (steps 4.1 to 4.5). ``_llm_factory`` maps each ``AgentType`` to the
``BaseLlm`` class registered under its value in :mod:`coditect_core.llm_abstractions.registry`
(built-ins and ``coditect_core.llms`` plugins alike); a ``custom`` agent names its provider.
One LLM instance per agent is created on first use, reused by every task, and closed by
:meth:`TaskExecutor.aclose`.

:meth:`TaskExecutor.execute` dispatches on the agent's interface (``api``, ``cli``, ``script``,
``interactive``, ``hybrid``). Whatever goes wrong (unknown or disabled agent, missing key,
provider error, a crashing command) becomes a FAILED :class:`ExecutionResult` with a clear
error; only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import AgentError, CoditectError, LlmError
from ..llm_abstractions.base_llm import BaseLlm, LlmResponse
from ..llm_abstractions.command import CommandLlm, run_process
from ..llm_abstractions.registry import get_llm_class
from .agent_registry import (
    AgentCapability,
    AgentConfig,
    AgentInterface,
    AgentRegistry,
    AgentType,
)
from .execution_result import ExecutionResult, ExecutionStatus
from .prompts import (
    DEFAULT_MAX_CONTEXT_CHARS,
    UpstreamOutput,
    build_messages,
    handoff_prompt,
    review_messages,
    revision_messages,
    upstream_from_mapping,
)
from .script_protocol import parse_script_result, script_payload
from .task import AgentTask

__all__ = ["ExecutionResult", "ExecutionStatus", "TaskExecutor"]

logger = logging.getLogger(__name__)

_CAPABILITY_VALUES = frozenset(c.value for c in AgentCapability)
_INTERFACE_NAMES = {i: i.value for i in AgentInterface}

Upstream = Sequence[UpstreamOutput] | Mapping[str, str] | None


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
    [AgentTask, AgentConfig, "ExecutionResult", Sequence[UpstreamOutput]],
    Awaitable["ExecutionResult"],
]


class TaskExecutor:
    """Runs tasks on the agents of ``registry``.

    ``default_agent`` takes tasks that name none; failing that, a task's tags are matched to
    agent capabilities, and a registry with a single enabled agent uses it.
    """

    def __init__(
        self,
        registry: AgentRegistry | None = None,
        *,
        default_agent: str | None = None,
        max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
    ) -> None:
        self.registry = registry if registry is not None else AgentRegistry()
        self.default_agent = default_agent
        self.max_context_chars = max_context_chars
        self._llm_factory: dict[AgentType, type[BaseLlm]] = _LlmFactory()
        self._llms: dict[tuple[str, bool], tuple[AgentConfig, BaseLlm]] = {}
        self._retired: list[BaseLlm] = []
        self._handlers: dict[AgentInterface, Handler] = {
            AgentInterface.API: self._execute_api,
            AgentInterface.CLI: self._execute_cli,
            AgentInterface.SCRIPT: self._execute_script,
            AgentInterface.INTERACTIVE: self._execute_interactive,
            AgentInterface.HYBRID: self._execute_hybrid,
        }

    # ------------------------------------------------------------------ agents and LLMs

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
        """The LLM instance an agent's calls go through (its command backend for a cli agent)."""
        config = self.registry.get(agent) if isinstance(agent, str) else agent
        return self._get_llm(config, via_command=config.interface is AgentInterface.CLI)

    def _get_llm(self, agent: AgentConfig, *, via_command: bool = False) -> BaseLlm:
        """The agent's LLM instance, created on first use and reused (one per agent)."""
        key = (agent.name, via_command)
        cached = self._llms.get(key)
        if cached is not None:
            if cached[0] is agent:
                return cached[1]
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
        llm: BaseLlm
        if via_command:
            llm = CommandLlm(agent.command, model=agent.model, **settings)
        else:
            llm = self._llm_class(agent)(
                model=agent.model, api_key=agent.api_key_value(), **settings
            )
        self._llms[key] = (agent, llm)
        logger.debug("created %r for agent %s", llm, agent.name)
        return llm

    async def aclose(self) -> None:
        """Close every LLM instance the executor created."""
        llms = [llm for _, llm in self._llms.values()] + self._retired
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
    ) -> ExecutionResult:
        """Run ``task`` on ``agent`` (default: the task's, then the executor's).

        ``mode`` overrides the agent's interface. ``upstream`` is what the task's dependencies
        produced (:class:`UpstreamOutput` items, or ``{task_id: output}``), given to the model
        as context. Never raises except on cancellation: failures are FAILED results.
        """
        started = time.monotonic()
        result = ExecutionResult(
            task.task_id,
            agent=agent or task.agent or self.default_agent,
            status=ExecutionStatus.IN_PROGRESS,
            started_at=datetime.now(UTC),
        )
        config: AgentConfig | None = None
        try:
            if isinstance(upstream, dict) or (
                upstream
                and not isinstance(upstream, list | tuple)
                and isinstance(upstream, Mapping)
            ):
                upstream = upstream_from_mapping(upstream)
            config = self.resolve_agent(task, agent)
            result.agent = config.name
            interface = self._interface(mode) if mode is not None else config.interface
            result.metadata["interface"] = _INTERFACE_NAMES[interface]
            await self._handlers[interface](task, config, result, upstream or ())
        except (CoditectError, ValueError, OSError) as error:
            self._fail(result, error, config)
        except Exception as error:  # a bug or an unmapped failure: still only this task's
            logger.exception("unexpected error executing task %s", task.task_id)
            self._fail(result, error, config)
        result.duration_seconds = time.monotonic() - started
        result.completed_at = datetime.now(UTC)
        return result

    @staticmethod
    def _interface(mode: AgentInterface | str) -> AgentInterface:
        try:
            return AgentInterface(mode)
        except ValueError:
            allowed = ", ".join(i.value for i in AgentInterface)
            raise AgentError(f"unknown mode {mode!r}; expected one of {allowed}") from None

    def _fail(
        self, result: ExecutionResult, error: BaseException, agent: AgentConfig | None
    ) -> None:
        result.status = ExecutionStatus.FAILED
        if isinstance(error, LlmError):
            result.attempts += error.attempts
        text = (
            str(error) if isinstance(error, CoditectError) else f"{type(error).__name__}: {error}"
        )
        key = agent.api_key_value() if agent else None
        if key and key in text:
            text = text.replace(key, "***")
        result.error = text or type(error).__name__
        logger.info("task %s failed on %s: %s", result.task_id, result.agent, result.error)

    @staticmethod
    def _apply(result: ExecutionResult, response: LlmResponse) -> None:
        result.status = ExecutionStatus.SUCCESS
        result.output = response.text
        result.model = response.model
        result.usage = response.usage
        result.attempts += response.attempts
        if response.finish_reason is not None:
            result.metadata["finish_reason"] = response.finish_reason

    def _messages(
        self, task: AgentTask, agent: AgentConfig, upstream: Sequence[UpstreamOutput]
    ) -> list[Any]:
        return build_messages(task, agent, upstream, max_context_chars=self.max_context_chars)

    async def _execute_api(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput] = (),
    ) -> ExecutionResult:
        """The plan's step 4.3: factory class -> one instance per agent -> messages -> call."""
        result.status = ExecutionStatus.IN_PROGRESS
        llm = self._get_llm(agent_config)
        messages = self._messages(task, agent_config, upstream)
        # generate_async is generate_content_async keeping usage, model and attempt count.
        response = await llm.generate_async(messages)
        self._apply(result, response)
        return result

    async def _execute_cli(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput] = (),
    ) -> ExecutionResult:
        """An external CLI agent through :class:`CommandLlm`: prompt on stdin, stdout back."""
        result.status = ExecutionStatus.IN_PROGRESS
        if not agent_config.command:
            raise AgentError(f"agent {agent_config.name!r} has no command to run")
        llm = self._get_llm(agent_config, via_command=True)
        response = await llm.generate_async(self._messages(task, agent_config, upstream))
        self._apply(result, response)
        result.metadata["command"] = agent_config.command[0]
        return result

    async def _execute_script(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput] = (),
    ) -> ExecutionResult:
        """The legacy ``execute_*.py`` protocol (:mod:`.script_protocol`)."""
        result.status = ExecutionStatus.IN_PROGRESS
        argv = list(agent_config.command or ())
        if not argv:
            raise AgentError(f"agent {agent_config.name!r} has no script to run")
        if argv[0].endswith(".py"):
            argv.insert(0, sys.executable)
        messages = self._messages(task, agent_config, upstream)
        payload = script_payload(task, agent_config, messages, upstream)
        options = agent_config.provider_options
        done = await run_process(
            argv,
            stdin=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            timeout=agent_config.timeout,
            cwd=options.get("cwd"),
            env=options.get("env"),
            provider="script",
        )
        outcome = parse_script_result(done.returncode, done.stdout, done.stderr)
        result.attempts += 1
        result.model = outcome.model or agent_config.model
        result.usage = outcome.usage
        result.output = outcome.output
        result.metadata.update(outcome.metadata)
        if outcome.ok:
            result.status = ExecutionStatus.SUCCESS
        else:
            result.status = ExecutionStatus.FAILED
            result.error = outcome.error
        return result

    async def _execute_interactive(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput] = (),
    ) -> ExecutionResult:
        """No model call: the task is handed to a person, with the prompt to work from."""
        prompt = handoff_prompt(
            task, agent_config, upstream, max_context_chars=self.max_context_chars
        )
        result.status = ExecutionStatus.AWAITING_HUMAN
        result.metadata["handoff_prompt"] = prompt
        logger.info("task %s handed to a person (agent %s)", task.task_id, agent_config.name)
        return result

    async def _execute_hybrid(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput] = (),
    ) -> ExecutionResult:
        """The agent drafts, its reviewer critiques, the agent revises."""
        result.status = ExecutionStatus.IN_PROGRESS
        if not agent_config.reviewer:
            raise AgentError(f"agent {agent_config.name!r}: hybrid needs a reviewer")
        reviewer = self.registry.get(agent_config.reviewer)
        if not reviewer.enabled:
            raise AgentError(f"reviewer agent {reviewer.name!r} is disabled")
        if reviewer.interface not in (AgentInterface.API, AgentInterface.CLI):
            raise AgentError(
                f"reviewer agent {reviewer.name!r} must use the api or cli interface, "
                f"not {reviewer.interface.value}"
            )
        author = self._get_llm(agent_config, via_command=bool(agent_config.command))
        critic = self._get_llm(reviewer, via_command=reviewer.interface is AgentInterface.CLI)
        messages = self._messages(task, agent_config, upstream)
        draft = await author.generate_async(messages)
        review = await critic.generate_async(
            review_messages(
                task, draft.text, reviewer, upstream, max_context_chars=self.max_context_chars
            )
        )
        final = await author.generate_async(revision_messages(messages, draft.text, review.text))
        self._apply(result, final)
        result.usage = draft.usage + review.usage + final.usage
        result.attempts = draft.attempts + review.attempts + final.attempts
        result.metadata.update(
            {
                "draft": draft.text,
                "review": review.text,
                "reviewer": reviewer.name,
                "reviewer_model": review.model,
                "reviewer_usage": review.usage.to_dict(),
            }
        )
        return result

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

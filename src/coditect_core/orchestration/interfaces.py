"""How a task runs on each agent interface: the handlers :class:`~.executor.TaskExecutor` uses.

``api`` and ``cli`` agents call their ``BaseLlm`` (a ``CommandLlm`` for ``cli``) through
:meth:`InterfaceHandlers._ask`: the request with its retries, limits and timeouts
(:func:`.calls.send`), priced. ``script`` runs the legacy protocol (:mod:`.script_protocol`),
``interactive`` hands the task to a person, ``hybrid`` drafts, reviews and revises. A handler
fills the task's :class:`ExecutionResult` or raises; the executor turns errors into FAILED
results and decides on fallbacks.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AgentError, LlmConfigurationError, LlmError, LlmResponseError
from ..llm_abstractions.base_llm import BaseLlm, LlmResponse
from ..llm_abstractions.command import ProcessResult, run_process
from ..llm_abstractions.messages import Message
from ..llm_abstractions.retry import RetryPolicy
from .agent_registry import AgentConfig, AgentInterface, AgentRegistry
from .calls import Attempts, request_failed, send
from .execution_result import ExecutionResult, ExecutionStatus
from .limits import AgentGate, estimate_tokens
from .prompts import (
    UpstreamOutput,
    build_messages,
    handoff_prompt,
    review_messages,
    revision_messages,
)
from .script_protocol import EXIT_CONFIGURATION_ERROR, parse_script_result, script_payload
from .task import AgentTask

if TYPE_CHECKING:
    from .pricing import PriceBook

__all__ = ["InterfaceHandlers"]

logger = logging.getLogger(__name__)


def _prompt_chars(messages: Sequence[Message]) -> int:
    return sum(len(m["content"]) for m in messages)


def _tokens(response: LlmResponse) -> int:
    return response.usage.total_tokens


class InterfaceHandlers:
    """The per-interface half of :class:`~.executor.TaskExecutor` (a mixin: it uses the
    executor's agents, LLM instances, gates and prices)."""

    registry: AgentRegistry
    max_context_chars: int
    prices: PriceBook
    _gates: dict[str, AgentGate]

    def _get_llm(
        self, agent: AgentConfig, *, via_command: bool = False
    ) -> tuple[BaseLlm, RetryPolicy]:
        raise NotImplementedError

    def retry_policy(self, agent: str | AgentConfig) -> RetryPolicy:
        raise NotImplementedError

    def _messages(
        self, task: AgentTask, agent: AgentConfig, upstream: Sequence[UpstreamOutput]
    ) -> list[Any]:
        return build_messages(task, agent, upstream, max_context_chars=self.max_context_chars)

    async def _ask(
        self,
        agent: AgentConfig,
        messages: list[Any],
        attempts: Attempts,
        *,
        via_command: bool = False,
        first: LlmError | None = None,
    ) -> LlmResponse:
        """One call of ``agent``'s LLM, retried by its policy, gated by its limits, priced.

        ``first``: the call's first request was already made, and failed with it.
        """
        llm, policy = self._get_llm(agent, via_command=via_command)
        first_error = first
        if (
            first is None
            and attempts.failure is None
            and attempts.deadline is None
            and agent.name not in self._gates
        ):
            # The common case, kept cheap: the attempt's first request, nothing to wait for.
            attempts.requests += 1
            t0 = time.monotonic()
            try:
                response = await llm.generate_async(messages)
            except LlmError as error:
                request_failed(
                    attempts, agent, llm.model, error, time.monotonic() - t0, self._gates,
                    policy.max_delay,
                )  # fmt: skip
                if not error.retryable or policy.max_attempts == 1:
                    raise
                first_error = error
            else:
                attempts.succeeded(
                    response.usage,
                    self.prices.cost(agent.name, llm.provider, response.model, response.usage),
                )
                return response

        def call(timeout: float | None) -> Awaitable[LlmResponse]:
            if timeout is None:
                return llm.generate_async(messages)
            return llm.generate_async(messages, timeout=timeout)

        gate = self._gates.get(agent.name)
        response = await send(
            attempts,
            agent,
            llm.model,
            policy,
            self._gates,
            call,
            call_timeout=llm.timeout,
            estimate=estimate_tokens(_prompt_chars(messages)) if gate is not None else 0,
            tokens=_tokens,
            first_error=first_error,
        )
        attempts.succeeded(
            response.usage,
            self.prices.cost(agent.name, llm.provider, response.model, response.usage),
        )
        return response

    @staticmethod
    def _apply(result: ExecutionResult, response: LlmResponse) -> None:
        result.status = ExecutionStatus.SUCCESS
        result.output = response.text
        result.model = response.model
        result.usage = response.usage
        if response.finish_reason is not None:
            result.metadata["finish_reason"] = response.finish_reason

    async def _execute_api(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
    ) -> ExecutionResult:
        """The plan's step 4.3: factory class -> one instance per agent -> messages -> call."""
        result.status = ExecutionStatus.IN_PROGRESS
        messages = self._messages(task, agent_config, upstream)
        llm, policy = self._get_llm(agent_config)
        if (
            attempts.failure is None
            and attempts.deadline is None
            and agent_config.name not in self._gates
        ):
            # The common case, inlined (this is every task's path): as in _ask.
            attempts.requests += 1
            t0 = time.monotonic()
            try:
                # generate_async: generate_content_async keeping usage, model, attempts.
                response = await llm.generate_async(messages)
            except LlmError as error:
                request_failed(
                    attempts, agent_config, llm.model, error, time.monotonic() - t0,
                    self._gates, policy.max_delay,
                )  # fmt: skip
                if not error.retryable or policy.max_attempts == 1:
                    raise
                response = await self._ask(agent_config, messages, attempts, first=error)
            else:  # a fresh attempt's only request: its usage and cost are this call's
                attempts.usage = response.usage
                attempts.cost = self.prices.cost(
                    agent_config.name, llm.provider, response.model, response.usage
                )
            self._apply(result, response)
            return result
        response = await self._ask(agent_config, messages, attempts)
        self._apply(result, response)
        return result

    async def _execute_cli(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
    ) -> ExecutionResult:
        """An external CLI agent through :class:`CommandLlm`: prompt on stdin, stdout back."""
        result.status = ExecutionStatus.IN_PROGRESS
        if not agent_config.command:
            raise AgentError(f"agent {agent_config.name!r} has no command to run")
        messages = self._messages(task, agent_config, upstream)
        response = await self._ask(agent_config, messages, attempts, via_command=True)
        self._apply(result, response)
        result.metadata["command"] = agent_config.command[0]
        return result

    async def _execute_script(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
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
        stdin = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        options = agent_config.provider_options

        def call(timeout: float | None) -> Awaitable[ProcessResult]:
            return run_process(
                argv,
                stdin=stdin,
                timeout=timeout,
                cwd=options.get("cwd"),
                env=options.get("env"),
                provider="script",
            )

        done = await send(
            attempts,
            agent_config,
            agent_config.model,
            self.retry_policy(agent_config),
            self._gates,
            call,
            call_timeout=agent_config.timeout,
        )
        outcome = parse_script_result(done.returncode, done.stdout, done.stderr)
        result.model = outcome.model or agent_config.model
        result.usage = outcome.usage
        result.output = outcome.output
        result.metadata.update(outcome.metadata)
        if not outcome.ok:
            if done.returncode == EXIT_CONFIGURATION_ERROR:
                raise LlmConfigurationError(outcome.error or "script configuration error")
            raise LlmResponseError(outcome.error or "script failed", retryable=False)
        attempts.succeeded(
            outcome.usage,
            self.prices.cost(
                agent_config.name,
                agent_config.provider or agent_config.agent_type.value,
                result.model,
                outcome.usage,
            ),
        )
        result.status = ExecutionStatus.SUCCESS
        return result

    async def _execute_interactive(
        self,
        task: AgentTask,
        agent_config: AgentConfig,
        result: ExecutionResult,
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
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
        upstream: Sequence[UpstreamOutput],
        attempts: Attempts,
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
        by_command = bool(agent_config.command)
        messages = self._messages(task, agent_config, upstream)
        draft = await self._ask(agent_config, messages, attempts, via_command=by_command)
        review = await self._ask(
            reviewer,
            review_messages(
                task, draft.text, reviewer, upstream, max_context_chars=self.max_context_chars
            ),
            attempts,
            via_command=reviewer.interface is AgentInterface.CLI,
        )
        final = await self._ask(
            agent_config,
            revision_messages(messages, draft.text, review.text),
            attempts,
            via_command=by_command,
        )
        self._apply(result, final)
        result.usage = draft.usage + review.usage + final.usage
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

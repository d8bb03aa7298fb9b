"""OpenTelemetry traces of runs, tasks and LLM calls, following the GenAI semantic conventions.

Opt-in twice over: nothing here runs unless the application imports this module and turns it on,
and spans go only where the application's tracer provider sends them. The library never
configures a provider or an exporter (without one, OpenTelemetry's API records nothing), and the
project sends no telemetry of its own, ever. Needs the ``[otel]`` extra (``opentelemetry-api``;
``opentelemetry-sdk`` to record spans)::

    from coditect_core import telemetry

    telemetry.instrument()                                    # a span per LLM call
    orchestrator.add_observer(telemetry.TelemetryObserver())  # a span per run and per task

The tree is ``run {project}`` > ``task {id}`` > ``chat {model}`` (one per call of
:meth:`BaseLlm.generate_async` or stream; a retry's or a fallback's call is another one under
the same task, whose span also gets a ``coditect.attempt_started`` event when the orchestrator
reports a further attempt). LLM spans carry ``gen_ai.operation.name``, ``gen_ai.system`` (and
its newer name ``gen_ai.provider.name``), ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``gen_ai.response.finish_reasons``
and, on failure, ``error.type`` with an ERROR status; each failed try (retried or not) is a
``coditect.llm.attempt_failed`` event. Prompts and outputs (messages, task text) are recorded
only with ``capture_content=True``, as ``gen_ai.input.messages`` / ``gen_ai.output.messages``.
Every text a span gets from outside (messages, replies, task text and output, error messages) is
masked first (:func:`coditect_core.secrets.mask`, the mask of the store and the logs): a key a
reply echoed, or a ``${...}`` secret expanded into a system prompt, is exported as ``***``.

:func:`instrument` installs itself as the instrumentation of
:mod:`coditect_core.llm_abstractions.instrumentation`, which every call of
:meth:`BaseLlm.generate_async` and every stream reports to; :func:`uninstrument` removes it.
:mod:`coditect_core.llm_abstractions` never imports OpenTelemetry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "coditect_core.telemetry needs OpenTelemetry: pip install 'coditect-core[otel]'"
    ) from error

from .errors import LlmError
from .llm_abstractions import instrumentation
from .llm_abstractions.base_llm import BaseLlm, LlmResponse
from .llm_abstractions.messages import Message
from .orchestration.observer import OrchestratorObserver
from .orchestration.prompts import task_prompt
from .orchestration.task import AgentTask, TaskStatus
from .secrets import mask

if TYPE_CHECKING:
    from .orchestration.executor import ExecutionResult
    from .orchestration.orchestrator import ProjectOrchestrator, RunSummary

__all__ = ["TRACER_NAME", "TelemetryObserver", "instrument", "is_instrumented", "uninstrument"]

logger = logging.getLogger(__name__)

TRACER_NAME = "coditect_core"

#: Our provider names -> ``gen_ai.system`` values of the semantic conventions (others as is).
GEN_AI_SYSTEMS = {
    "anthropic-claude": "anthropic",
    "openai-gpt": "openai",
    "openai-compatible": "openai",
    "google-gemini": "gcp.gemini",
}


def _tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    from . import __version__

    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _fail(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", _error_type(error))
    attempts = getattr(error, "attempts", None)
    if isinstance(attempts, int) and attempts:
        span.set_attribute("coditect.llm.attempts", attempts)
    span.set_status(Status(StatusCode.ERROR, mask(str(error))[:500]))


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps(
        [
            {"role": m["role"], "parts": [{"type": "text", "content": mask(m["content"])}]}
            for m in messages
        ],
        ensure_ascii=False,
    )


def _output_json(response: LlmResponse) -> str:
    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": mask(response.text)}],
        "finish_reason": response.finish_reason or "stop",
    }
    return json.dumps([message], ensure_ascii=False)


# ----------------------------------------------------------------------------- LLM calls


class _Calls:
    """The instrumentation :func:`instrument` installs: a span per LLM call."""

    def __init__(self, provider: trace.TracerProvider | None, capture_content: bool) -> None:
        self.tracer = _tracer(provider)
        self.capture_content = capture_content

    def start_call(
        self, llm: BaseLlm, messages: list[Message], options: Mapping[str, Any], stream: bool
    ) -> _CallSpan:
        attributes = _request_attributes(llm, options, stream=stream)
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _messages_json(messages)
        span = self.tracer.start_span(
            f"chat {attributes['gen_ai.request.model']}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return _CallSpan(span, self.capture_content)


def _request_attributes(
    llm: BaseLlm, options: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    model = options.get("model") or llm.model
    system = GEN_AI_SYSTEMS.get(llm.provider, llm.provider)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        "gen_ai.request.model": model,
        "coditect.llm.provider": llm.provider,
    }
    max_tokens = options.get("max_tokens", llm.max_tokens)
    temperature = options.get("temperature", llm.temperature)
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    if stream:
        attributes["gen_ai.request.stream"] = True
    if llm.base_url:
        parts = urlsplit(llm.base_url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        if parts.port:
            attributes["server.port"] = parts.port
    return attributes


class _CallSpan:
    """One call's span: current while the call runs, ended when it ends."""

    def __init__(self, span: trace.Span, capture_content: bool) -> None:
        self.span = span
        self.capture_content = capture_content

    def current(self) -> AbstractContextManager[Any]:
        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def attempt_failed(self, error: LlmError, attempt: int) -> None:
        self.span.add_event(
            "coditect.llm.attempt_failed",
            {
                "coditect.llm.attempt": attempt,
                "error.type": _error_type(error),
                "coditect.llm.retryable": bool(error.retryable),
            },
        )

    def finished(self, response: LlmResponse) -> None:
        span = self.span
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
        if response.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        span.set_attribute("coditect.llm.attempts", response.attempts)
        if self.capture_content:
            span.set_attribute("gen_ai.output.messages", _output_json(response))
        span.end()

    def failed(self, error: BaseException) -> None:
        if isinstance(error, GeneratorExit):  # a stream its reader stopped early
            self.span.set_attribute("coditect.llm.stream_closed_early", True)
        else:
            _fail(self.span, error)
        self.span.end()


def instrument(
    *, capture_content: bool = False, tracer_provider: trace.TracerProvider | None = None
) -> None:
    """Trace every LLM call from now on (all :class:`BaseLlm` subclasses).

    ``tracer_provider`` defaults to the global one the application set up (if it set none,
    spans are not recorded). ``capture_content`` records the messages and replies: off by
    default, since prompts and outputs may hold code, personal data or secrets. Calling it again
    replaces the settings.
    """
    instrumentation.install(_Calls(tracer_provider, capture_content))
    logger.debug("LLM calls traced (capture_content=%s)", capture_content)


def uninstrument() -> None:
    """Stop tracing LLM calls."""
    if is_instrumented():
        instrumentation.uninstall()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return isinstance(instrumentation.installed(), _Calls)


# ----------------------------------------------------------------------------- runs and tasks


class TelemetryObserver(OrchestratorObserver):
    """A span per run and per task execution, from an orchestrator's events.

    A task's span is the current span while its call runs (it is attached in the task's own
    asyncio task), so the LLM spans of :func:`instrument` nest under it. A task blocked by a
    failed dependency never runs: it is an event on the run span. ``run_id`` (the store's) is
    added to the run span when given. Use one observer per orchestrator.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        capture_content: bool = False,
        run_id: int | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self.capture_content = capture_content
        self.run_id = run_id
        self._runs: dict[int, trace.Span] = {}
        self._tasks: dict[tuple[int, str], tuple[trace.Span, object]] = {}
        self._owner: dict[str, int] = {}  # task id -> the orchestrator (id) running it

    @property
    def tracer(self) -> trace.Tracer:
        return _tracer(self._tracer_provider)

    async def run_started(
        self, orchestrator: ProjectOrchestrator, *, max_concurrency: int, fail_fast: bool
    ) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": orchestrator.name,
            "coditect.project": orchestrator.name,
            "coditect.run.max_concurrency": max_concurrency,
            "coditect.run.fail_fast": fail_fast,
            "coditect.run.tasks": len(orchestrator.tasks),
        }
        if self.run_id is not None:
            attributes["coditect.run.id"] = self.run_id
        span = self.tracer.start_span(f"run {orchestrator.name}", attributes=attributes)
        self._runs[id(orchestrator)] = span
        for tid in orchestrator.tasks:
            self._owner[tid] = id(orchestrator)

    async def task_started(
        self,
        task: AgentTask,
        *,
        previous: TaskStatus,
        agent: str | None,
        model: str | None,
        interface: str | None,
    ) -> None:
        owner = self._owner.get(task.task_id)
        run = self._runs.get(owner) if owner is not None else None
        parent = trace.set_span_in_context(run) if run is not None else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "coditect.task.id": task.task_id,
            "coditect.task.priority": task.priority.value,
            "coditect.task.dependencies": len(task.dependencies),
        }
        if agent:
            attributes["gen_ai.agent.name"] = agent
        if model:
            attributes["gen_ai.request.model"] = model
        if interface:
            attributes["coditect.agent.interface"] = interface
        if self.capture_content:
            attributes["coditect.task.title"] = mask(task.title)
            attributes["coditect.task.prompt"] = mask(task_prompt(task))
        span = self.tracer.start_span(f"task {task.task_id}", context=parent, attributes=attributes)
        # Current in this asyncio task until the attempt ends: the LLM spans nest under it.
        token = otel_context.attach(trace.set_span_in_context(span))
        self._tasks[(owner or 0, task.task_id)] = (span, token)

    async def attempt_started(
        self,
        task: AgentTask,
        ended: ExecutionResult,
        *,
        agent: str,
        model: str | None,
        interface: str | None,
    ) -> None:
        """A further attempt of a running task (a retry, or a fallback): an event on its span."""
        entry = self._tasks.get((self._owner.get(task.task_id) or 0, task.task_id))
        if entry is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.agent.name": agent,
            "coditect.attempt.kind": (
                "turn"
                if ended.metadata.get("turn") is not None
                else "retry"
                if agent == ended.agent
                else "fallback"
            ),
            "coditect.attempt.previous_agent": ended.agent or "",
            "coditect.attempt.previous_status": ended.status.value,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        entry[0].add_event("coditect.attempt_started", attributes)

    async def tool_called(self, task: AgentTask, turn: int, call: dict[str, Any]) -> None:
        """A tool call of the task's agent loop: a span of its own under the task's (GenAI
        semantic conventions: ``execute_tool {name}``), over the time the call took."""
        entry = self._tasks.get((self._owner.get(task.task_id) or 0, task.task_id))
        parent = trace.set_span_in_context(entry[0]) if entry is not None else None
        name = str(call.get("name", ""))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": str(call.get("id", "")),
            "gen_ai.tool.type": "function",
            "coditect.task.id": task.task_id,
            "coditect.loop.turn": turn,
        }
        if call.get("toolset"):
            attributes["coditect.tool.source"] = str(call["toolset"])
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = mask(str(call.get("arguments", "")))
            attributes["gen_ai.tool.call.result"] = mask(str(call.get("result", "")))
        end = time.time_ns()
        took = int(float(call.get("duration_s") or 0.0) * 1e9)
        span = self.tracer.start_span(
            f"execute_tool {name}", context=parent, attributes=attributes, start_time=end - took
        )
        if call.get("is_error"):
            span.set_attribute("error.type", "tool_error")
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end(end_time=end)

    async def attempt_finished(
        self,
        task: AgentTask,
        result: ExecutionResult,
        *,
        previous: TaskStatus,
        reason: str | None,
    ) -> None:
        key = (self._owner.get(task.task_id) or 0, task.task_id)
        entry = self._tasks.pop(key, None)
        if entry is None:  # finished by hand: no execution to trace
            return
        span, token = entry
        span.set_attribute("coditect.task.status", task.status.value)
        span.set_attribute("coditect.task.attempts", result.attempts)
        if result.usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", result.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", result.usage.completion_tokens)
        if result.model:
            span.set_attribute("gen_ai.response.model", result.model)
        if result.agent:
            span.set_attribute("gen_ai.agent.name", result.agent)
        cost = result.cost_usd
        if isinstance(cost, int | float):
            span.set_attribute("coditect.cost_usd", float(cost))
        if task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            span.set_attribute("error.type", task.status.value)
            reason = mask(result.error or task.status.value)[:500]
            span.set_status(Status(StatusCode.ERROR, reason))
        if self.capture_content and result.output is not None:
            span.set_attribute("coditect.task.output", mask(result.output))
        span.end()
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # pragma: no cover - attached in another context; nothing to undo
            logger.debug("task %s: span context was not ours to detach", task.task_id)

    async def task_status_changed(
        self, task: AgentTask, old: TaskStatus, new: TaskStatus, *, reason: str | None
    ) -> None:
        if new is not TaskStatus.BLOCKED:
            return
        owner = self._owner.get(task.task_id)
        run = self._runs.get(owner) if owner is not None else None
        if run is not None:
            run.add_event(
                "coditect.task.blocked",
                {"coditect.task.id": task.task_id, "reason": mask(reason or "")},
            )

    async def run_finished(self, orchestrator: ProjectOrchestrator, summary: RunSummary) -> None:
        span = self._runs.pop(id(orchestrator), None)
        for key in [k for k in self._tasks if k[0] == id(orchestrator)]:
            leftover, _ = self._tasks.pop(key)  # never finished (the run failed): close it
            leftover.set_status(Status(StatusCode.ERROR, "the run ended first"))
            leftover.end()
        if span is None:
            return
        for status, n in summary.counts.items():
            if n:
                span.set_attribute(f"coditect.run.{status}", n)
        span.set_attribute("coditect.run.cancelled", summary.cancelled)
        span.set_attribute("gen_ai.usage.input_tokens", summary.usage.get("prompt_tokens", 0))
        span.set_attribute("gen_ai.usage.output_tokens", summary.usage.get("completion_tokens", 0))
        if summary.error is not None:
            span.set_attribute("error.type", "run_error")
            span.set_status(Status(StatusCode.ERROR, mask(summary.error)[:500]))
        elif not summary.ok:
            failed = summary.counts.get("failed", 0)
            span.set_attribute("error.type", "cancelled" if summary.cancelled else "tasks_failed")
            span.set_status(Status(StatusCode.ERROR, f"{failed} task(s) failed"))
        span.end()

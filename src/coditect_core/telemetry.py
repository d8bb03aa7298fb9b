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

:func:`instrument` wraps :meth:`BaseLlm.generate_async` and the stream of
:meth:`BaseLlm.stream_content_async` in place (as OpenTelemetry instrumentations do), and the
retry loop that :mod:`.llm_abstractions.base_llm` and :mod:`.llm_abstractions.stream` call;
:func:`uninstrument` puts them back.
:mod:`coditect_core.llm_abstractions` never imports OpenTelemetry.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
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

from .llm_abstractions import base_llm, stream
from .llm_abstractions.base_llm import BaseLlm, LlmResponse, LlmStream
from .llm_abstractions.messages import normalize_messages
from .orchestration.observer import OrchestratorObserver
from .orchestration.prompts import task_prompt
from .orchestration.task import AgentTask, TaskStatus

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
    span.set_status(Status(StatusCode.ERROR, str(error)[:500]))


def _messages_json(messages: list[Mapping[str, str]]) -> str:
    return json.dumps(
        [
            {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
            for m in messages
        ],
        ensure_ascii=False,
    )


def _output_json(response: LlmResponse) -> str:
    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": response.text}],
        "finish_reason": response.finish_reason or "stop",
    }
    return json.dumps([message], ensure_ascii=False)


# ----------------------------------------------------------------------------- LLM calls


class _Instrumentation:
    """What :func:`instrument` replaced, to put back; and its settings."""

    def __init__(self, provider: trace.TracerProvider | None, capture_content: bool) -> None:
        self.tracer = _tracer(provider)
        self.capture_content = capture_content
        self.generate_async = BaseLlm.generate_async
        self.stream_run = LlmStream._run
        self.call_with_retry = base_llm.call_with_retry

    def request_attributes(
        self, llm: BaseLlm, kwargs: Mapping[str, Any], *, stream: bool
    ) -> dict[str, Any]:
        model = kwargs.get("model") or llm.model
        system = GEN_AI_SYSTEMS.get(llm.provider, llm.provider)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": system,
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "coditect.llm.provider": llm.provider,
        }
        max_tokens = kwargs.get("max_tokens", llm.max_tokens)
        temperature = kwargs.get("temperature", llm.temperature)
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

    def finish(self, span: trace.Span, response: LlmResponse) -> None:
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
        if response.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        span.set_attribute("coditect.llm.attempts", response.attempts)
        if self.capture_content:
            span.set_attribute("gen_ai.output.messages", _output_json(response))

    def wrap_generate(self) -> Callable[..., Awaitable[LlmResponse]]:
        original = self.generate_async

        @functools.wraps(original)
        async def generate_async(llm: BaseLlm, messages: Any, **kwargs: Any) -> LlmResponse:
            attributes = self.request_attributes(llm, kwargs, stream=False)
            if self.capture_content:
                msgs = normalize_messages(messages, provider=llm.provider)
                attributes["gen_ai.input.messages"] = _messages_json(msgs)
            name = f"chat {attributes['gen_ai.request.model']}"
            with self.tracer.start_as_current_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await original(llm, messages, **kwargs)
                except BaseException as error:
                    _fail(span, error)
                    raise
                self.finish(span, response)
                return response

        return generate_async

    def wrap_stream(self) -> Callable[[LlmStream], AsyncGenerator[str, None]]:
        original = self.stream_run

        @functools.wraps(original)
        async def _run(stream: LlmStream) -> AsyncGenerator[str, None]:
            llm = stream._llm
            params = stream._params
            kwargs = {"model": params.model, "max_tokens": params.max_tokens}
            kwargs["temperature"] = params.temperature
            attributes = self.request_attributes(llm, kwargs, stream=True)
            if self.capture_content:
                attributes["gen_ai.input.messages"] = _messages_json(stream._messages)
            span = self.tracer.start_span(
                f"chat {params.model}", kind=SpanKind.CLIENT, attributes=attributes
            )
            inner = original(stream)
            try:
                token = otel_context.attach(trace.set_span_in_context(span))
                try:
                    first = await anext(inner, None)  # the retries happen here
                finally:
                    otel_context.detach(token)
                if first is not None:
                    yield first
                    async for delta in inner:
                        yield delta
            except GeneratorExit:
                span.set_attribute("coditect.llm.stream_closed_early", True)
                raise
            except BaseException as error:
                _fail(span, error)
                raise
            else:
                if stream.response is not None:
                    self.finish(span, stream.response)
            finally:
                await inner.aclose()
                span.end()

        return _run

    def wrap_retry(self) -> Callable[..., Awaitable[Any]]:
        original = self.call_with_retry

        @functools.wraps(original)
        async def call_with_retry(
            policy: Any, fn: Callable[[int], Awaitable[Any]], **kwargs: Any
        ) -> Any:
            async def attempt(n: int) -> Any:
                try:
                    return await fn(n)
                except Exception as error:
                    span = trace.get_current_span()
                    if span.is_recording():
                        span.add_event(
                            "coditect.llm.attempt_failed",
                            {
                                "coditect.llm.attempt": n,
                                "error.type": _error_type(error),
                                "coditect.llm.retryable": bool(getattr(error, "retryable", False)),
                            },
                        )
                    raise

            return await original(policy, attempt, **kwargs)

        return call_with_retry


_active: _Instrumentation | None = None


def instrument(
    *, capture_content: bool = False, tracer_provider: trace.TracerProvider | None = None
) -> None:
    """Trace every LLM call from now on (all :class:`BaseLlm` subclasses).

    ``tracer_provider`` defaults to the global one the application set up (if it set none,
    spans are not recorded). ``capture_content`` records the messages and replies: off by
    default, since prompts and outputs may hold code, personal data or secrets. Calling it again
    replaces the settings.
    """
    global _active
    if _active is not None:
        uninstrument()
    state = _Instrumentation(tracer_provider, capture_content)
    BaseLlm.generate_async = state.wrap_generate()  # type: ignore[method-assign]
    LlmStream._run = state.wrap_stream()  # type: ignore[method-assign]
    # Both modules that make calls look call_with_retry up as their own global.
    base_llm.call_with_retry = stream.call_with_retry = state.wrap_retry()  # type: ignore[assignment]
    _active = state
    logger.debug("LLM calls traced (capture_content=%s)", capture_content)


def uninstrument() -> None:
    """Stop tracing LLM calls: the original methods are back."""
    global _active
    state, _active = _active, None
    if state is None:
        return
    BaseLlm.generate_async = state.generate_async  # type: ignore[method-assign]
    LlmStream._run = state.stream_run  # type: ignore[method-assign]
    base_llm.call_with_retry = stream.call_with_retry = state.call_with_retry  # type: ignore[assignment]


def is_instrumented() -> bool:
    return _active is not None


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
            attributes["coditect.task.title"] = task.title
            attributes["coditect.task.prompt"] = task_prompt(task)
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
            "coditect.attempt.kind": "retry" if agent == ended.agent else "fallback",
            "coditect.attempt.previous_agent": ended.agent or "",
            "coditect.attempt.previous_status": ended.status.value,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        entry[0].add_event("coditect.attempt_started", attributes)

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
        cost = result.metadata.get("cost")
        if isinstance(cost, int | float):
            span.set_attribute("coditect.cost_usd", float(cost))
        if task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            span.set_attribute("error.type", task.status.value)
            span.set_status(Status(StatusCode.ERROR, (result.error or task.status.value)[:500]))
        if self.capture_content and result.output is not None:
            span.set_attribute("coditect.task.output", result.output)
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
                "coditect.task.blocked", {"coditect.task.id": task.task_id, "reason": reason or ""}
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
            span.set_status(Status(StatusCode.ERROR, summary.error[:500]))
        elif not summary.ok:
            failed = summary.counts.get("failed", 0)
            span.set_attribute("error.type", "cancelled" if summary.cancelled else "tasks_failed")
            span.set_status(Status(StatusCode.ERROR, f"{failed} task(s) failed"))
        span.end()

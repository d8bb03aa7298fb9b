"""The cost forecast of a run, before it runs: its calls, their tokens, low / expected / worst cost.

For each task the resume plan runs (:mod:`.resume`), the calls its agent's interface makes are
listed (``api``, ``cli``, ``script``: one; ``hybrid``: draft, review, revision; ``interactive``: a
person, none), each with:

* its **input tokens**, estimated offline from the prompt the run would send (:mod:`.prompts`):
  :data:`CHARS_PER_TOKEN` characters a token plus :data:`MESSAGE_OVERHEAD` tokens a message and
  :data:`REQUEST_OVERHEAD` a request. No tokenizer: the ones that are exact download their tables
  at run time. Outputs of dependencies that have not run yet are counted at their output bound
  (cut to the context limit, as the prompt cuts them); those recorded are counted as they are.
* its **output bound**: the agent's ``max_tokens``, else the default its provider class sends
  (``BaseLlm.default_max_tokens``), else the model's context window from the price data, else
  none (the worst case is then unbounded). An agent with tools runs a loop of model turns: its
  call counts one turn in the low case, :data:`EXPECTED_TURNS` in the expected case and its
  ``max_turns`` in the worst case (a bound, not a figure: the forecast says so).
* a typed task (``output_schema``): its schema counted in the input; its ``output_retries``
  re-asks (default :data:`~coditect_core.llm_abstractions.output.DEFAULT_OUTPUT_RETRIES`) listed
  as calls ``re-ask N`` that cost nothing in the low and expected cases (the reply fits) and
  everything in the worst (each one's input: the conversation so far, the invalid reply at the
  output bound, and :data:`REASK_CHARS` of errors).
* three costs from the price book (:mod:`..llm_abstractions.pricing`): **low** (input x
  :data:`LOW_INPUT`, a tenth of the output bound), **expected** (the input estimate, half the
  bound) and **worst** (input x :data:`WORST_INPUT`, the whole bound, on the dearest of the agent
  and its fallbacks). A price that is unknown leaves the cost unknown (``None``), never zero.

A call that ``is_cached`` says would be answered from a cache costs nothing (``coditect`` passes
the call journal's answer; by default nothing is cached). Failed attempts that are billed (a
timeout after the provider worked) are not foreseen: their cost is unknown in the run's record too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import AgentError
from ..llm_abstractions.messages import Message
from ..llm_abstractions.output import DEFAULT_OUTPUT_RETRIES
from .agent_registry import AgentConfig, AgentInterface
from .estimate import (
    ASSUMED_OUTPUT,
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    call_cost,
    call_model,
    estimate_tokens,
    tokens_of,
)
from .executor import TaskExecutor
from .prompts import (
    UpstreamOutput,
    build_messages,
    review_messages,
    revision_messages,
)
from .resume import ResumePlan
from .task import AgentTask

__all__ = [
    "CHARS_PER_TOKEN",
    "ESTIMATE_NOTE",
    "EXPECTED_TURNS",
    "LOW_INPUT",
    "MESSAGE_OVERHEAD",
    "REASK_CHARS",
    "REQUEST_OVERHEAD",
    "WORST_INPUT",
    "CallForecast",
    "IsCached",
    "RunForecast",
    "TaskForecast",
    "estimate_tokens",
    "forecast_run",
    "nothing_cached",
]

LOW_INPUT = 0.8
WORST_INPUT = 1.6
EXPECTED_TURNS = 3
"""Model turns the expected case counts for an agent with tools (the low case: one; the worst:
its ``max_turns``, a bound the loop never passes)."""
REASK_CHARS = 800
"""Characters of the message listing a typed output's validation errors (a re-ask's input)."""

ESTIMATE_NOTE = (
    "input tokens are an offline estimate (4 characters a token, +4 a message, +3 a request; "
    "no tokenizer): measured by bench/bench_forecast.py, 1.00 to 1.07 times what the test stub "
    "counted (mean 1.02), 0.65 to 1.22 times SmolLM2's tokenizer (mean 0.94); the worst case "
    "allows 60% more input"
)

IsCached = Callable[[AgentConfig, Sequence[Message]], bool]
"""Whether ``agent``'s request of these messages would be answered from a cache (free)."""


def nothing_cached(agent: AgentConfig, messages: Sequence[Message]) -> bool:
    """The default :data:`IsCached`: nothing is cached."""
    return False


@dataclass(frozen=True, slots=True)
class CallForecast:
    """One call a task would make."""

    role: str  # "call", a hybrid's "draft", "review", "revision", a typed output's "re-ask N"
    agent: str
    provider: str | None
    model: str | None
    input_tokens: int
    output_bound: int | None  # None: unbounded
    low_usd: float | None
    expected_usd: float | None
    worst_usd: float | None
    cached: bool = False
    turns: int = 1
    """Model turns the expected case counts (an agent loop's: :data:`EXPECTED_TURNS`)."""
    max_turns: int = 1
    """Model turns the worst case counts: an agent loop's bound, ``max_turns``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "max_turns": self.max_turns,
            "role": self.role,
            "agent": self.agent,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_bound": self.output_bound,
            "low_usd": self.low_usd,
            "expected_usd": self.expected_usd,
            "worst_usd": self.worst_usd,
            "cached": self.cached,
        }


def _sum(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


@dataclass(frozen=True, slots=True)
class TaskForecast:
    """The calls of one task that would run, and their sums."""

    task_id: str
    agent: str | None
    calls: list[CallForecast]
    note: str = ""

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_bound(self) -> int | None:
        bounds = [c.output_bound for c in self.calls]
        return None if None in bounds else sum(b or 0 for b in bounds)

    @property
    def low_usd(self) -> float | None:
        return _sum(c.low_usd for c in self.calls)

    @property
    def expected_usd(self) -> float | None:
        return _sum(c.expected_usd for c in self.calls)

    @property
    def worst_usd(self) -> float | None:
        return _sum(c.worst_usd for c in self.calls)

    @property
    def unknown_price(self) -> bool:
        return any(c.expected_usd is None for c in self.calls) or bool(self.note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "agent": self.agent,
            "input_tokens": self.input_tokens,
            "output_bound": self.output_bound,
            "low_usd": self.low_usd,
            "expected_usd": self.expected_usd,
            "worst_usd": self.worst_usd,
            "unknown_price": self.unknown_price,
            "note": self.note,
            "calls": [c.to_dict() for c in self.calls],
        }


def _known_sum(values: Iterable[float | None]) -> tuple[float, int]:
    total, unknown = 0.0, 0
    for v in values:
        if v is None:
            unknown += 1
        else:
            total += v
    return total, unknown


@dataclass(frozen=True, slots=True)
class RunForecast:
    """The forecast of a run: the tasks that would run (in order), those skipped, the sums.

    A sum over tasks of which some have an unknown cost is ``None``; ``*_known_usd`` is the part
    that is known and ``unknown_tasks`` how many are not.
    """

    tasks: list[TaskForecast]
    skip: list[str]
    held: list[str] = field(default_factory=list)
    prices: str = ""

    @property
    def input_tokens(self) -> int:
        return sum(t.input_tokens for t in self.tasks)

    @property
    def output_bound(self) -> int | None:
        bounds = [t.output_bound for t in self.tasks]
        return None if None in bounds else sum(b or 0 for b in bounds)

    def _total(self, name: str) -> tuple[float | None, float, int]:
        values = [getattr(t, name) for t in self.tasks]
        known, unknown = _known_sum(values)
        return (known if not unknown else None), known, unknown

    @property
    def low_usd(self) -> float | None:
        return self._total("low_usd")[0]

    @property
    def expected_usd(self) -> float | None:
        return self._total("expected_usd")[0]

    @property
    def worst_usd(self) -> float | None:
        return self._total("worst_usd")[0]

    @property
    def worst_known_usd(self) -> float:
        return self._total("worst_usd")[1]

    @property
    def unknown_tasks(self) -> list[str]:
        return [t.task_id for t in self.tasks if t.unknown_price or t.worst_usd is None]

    def to_dict(self) -> dict[str, Any]:
        low, low_known, _ = self._total("low_usd")
        exp, exp_known, _ = self._total("expected_usd")
        worst, worst_known, _ = self._total("worst_usd")
        return {
            "estimate": ESTIMATE_NOTE,
            "prices": self.prices,
            "run": [t.task_id for t in self.tasks],
            "skip": self.skip,
            "held": self.held,
            "input_tokens": self.input_tokens,
            "output_bound": self.output_bound,
            "low_usd": low,
            "expected_usd": exp,
            "worst_usd": worst,
            "low_known_usd": low_known,
            "expected_known_usd": exp_known,
            "worst_known_usd": worst_known,
            "unknown_tasks": self.unknown_tasks,
            "tasks": [t.to_dict() for t in self.tasks],
        }


class _Forecaster:
    """One forecast's lookups: each agent's model, price and output bound, found once."""

    def __init__(self, executor: TaskExecutor, is_cached: IsCached) -> None:
        self.executor = executor
        self.registry = executor.registry
        self.is_cached = is_cached
        self._models: dict[str, tuple[str | None, str | None, int | None]] = {}

    def model(self, agent: AgentConfig) -> tuple[str | None, str | None, int | None]:
        """``(provider, model, output bound)`` of ``agent``'s calls."""
        found = self._models.get(agent.name)
        if found is None:
            found = self._models[agent.name] = call_model(self.executor, agent)
        return found

    def cost(self, agent: AgentConfig, prompt: float, completion: float) -> float | None:
        return call_cost(self.executor, agent, prompt, completion, self.model(agent))

    def candidates(self, agent: AgentConfig) -> list[AgentConfig]:
        out = [agent]
        for name in agent.fallbacks:
            if name in self.registry:
                other = self.registry.get(name)
                if other.enabled:
                    out.append(other)
        return out

    def call(
        self,
        role: str,
        agent: AgentConfig,
        chars: Sequence[int],
        messages: Sequence[Message] | None,
    ) -> CallForecast:
        provider, model, bound = self.model(agent)
        tokens = tokens_of(chars)
        if messages is not None and self.is_cached(agent, messages):
            return CallForecast(
                role, agent.name, provider, model, tokens, bound, 0.0, 0.0, 0.0, True
            )
        out = bound if bound is not None else ASSUMED_OUTPUT
        low = self.cost(agent, tokens * LOW_INPUT, out * 0.1)
        expected = self.cost(agent, tokens, out * 0.5)
        worst: float | None = None
        if bound is not None:
            costs = []
            for candidate in self.candidates(agent):
                cb = self.model(candidate)[2]
                costs.append(None if cb is None else self.cost(candidate, tokens * WORST_INPUT, cb))
            worst = None if None in costs else max(c or 0.0 for c in costs)
        return CallForecast(role, agent.name, provider, model, tokens, bound, low, expected, worst)


def _loop_call(one: CallForecast, max_turns: int) -> CallForecast:
    """An agent loop's calls from its first turn's: the low case one turn, the expected case
    :data:`EXPECTED_TURNS` (at most ``max_turns``), the worst case ``max_turns`` turns (each
    turn's input as large as the first's worst: a loop's conversation grows, so this is a bound
    only through ``max_turns`` and the output bound)."""
    expected = min(EXPECTED_TURNS, max_turns)

    def times(value: float | None, n: int) -> float | None:
        return None if value is None else value * n

    return replace(
        one,
        role="loop",
        output_bound=None if one.output_bound is None else one.output_bound * max_turns,
        expected_usd=times(one.expected_usd, expected),
        worst_usd=times(one.worst_usd, max_turns),
        turns=expected,
        max_turns=max_turns,
    )


def _placeholder(chars: int) -> str:
    return "x" * chars


def forecast_run(
    executor: TaskExecutor,
    tasks: Mapping[str, AgentTask],
    plan: ResumePlan,
    outputs: Mapping[str, str | None],
    *,
    is_cached: IsCached = nothing_cached,
    prices: str = "",
) -> RunForecast:
    """The forecast of running ``plan`` over ``tasks`` with ``executor``'s agents and prices.

    ``outputs`` are the recorded outputs of the tasks the plan skips (they reach their
    dependents' prompts as they are).
    """
    f = _Forecaster(executor, is_cached)
    limit = executor.max_context_chars
    held = set(plan.held)
    # characters of each task's output as its dependents will see it (None: a recorded output)
    out_chars: dict[str, int] = {}
    forecasts = []
    for tid in plan.run:
        task = tasks[tid]
        if tid in held:
            out_chars[tid] = 0
            continue
        try:
            agent = executor.registry.resolve(task, default=executor.default_agent)
        except AgentError as error:
            forecasts.append(TaskForecast(tid, task.agent, [], note=str(error)))
            out_chars[tid] = limit
            continue
        bound = f.model(agent)[2]
        produced = (bound if bound is not None else ASSUMED_OUTPUT) * CHARS_PER_TOKEN
        out_chars[tid] = produced
        upstream, pending = [], 0
        for dep in dict.fromkeys(task.dependencies):
            if dep in out_chars:  # runs before this one: its output is not known yet
                pending += out_chars[dep]
                upstream.append(UpstreamOutput(dep, tasks[dep].title if dep in tasks else dep, ""))
            elif outputs.get(dep) is not None:
                upstream.append(
                    UpstreamOutput(
                        dep, tasks[dep].title if dep in tasks else dep, outputs[dep] or ""
                    )
                )
        known = pending == 0
        messages = build_messages(task, agent, upstream, max_context_chars=limit)
        extra = sum(
            min(out_chars[u.task_id], limit) + (60 if out_chars[u.task_id] > limit else 0)
            for u in upstream
            if u.task_id in out_chars
        )
        chars = [len(str(m["content"])) for m in messages]
        chars[-1] += extra
        if task.output_schema is not None:  # sent too: a native field, a tool, a system prompt
            chars[0] += len(json.dumps(task.output_schema))
        calls: list[CallForecast] = []
        if agent.interface is AgentInterface.INTERACTIVE:
            forecasts.append(TaskForecast(tid, agent.name, [], note=""))
            continue
        calls.append(f.call("call", agent, chars, messages if known else None))
        typed_chars: Sequence[int] = chars  # the call that asks for a typed output
        if agent.tools and agent.interface is AgentInterface.API:
            calls[0] = _loop_call(calls[0], agent.max_turns)
        if agent.interface is AgentInterface.HYBRID and agent.reviewer in executor.registry:
            calls[0] = f.call("draft", agent, chars, messages if known else None)
            reviewer = executor.registry.get(str(agent.reviewer))
            draft = produced
            review_chars = _review_chars(task, reviewer, upstream, limit, extra, draft)
            calls.append(f.call("review", reviewer, review_chars, None))
            rb = f.model(reviewer)[2]
            review = (rb if rb is not None else ASSUMED_OUTPUT) * CHARS_PER_TOKEN
            revision = revision_messages(messages, "", "")
            rchars = [len(str(m["content"])) for m in revision]
            rchars[len(messages) - 1] += extra
            rchars[-2] += draft
            rchars[-1] += review
            calls.append(f.call("revision", agent, rchars, None))
            typed_chars = rchars
        if task.output_schema is not None:
            calls += _reasks(f, task, agent, calls[-1], typed_chars)
        forecasts.append(TaskForecast(tid, agent.name, calls))
    return RunForecast(forecasts, list(plan.skip), sorted(held), prices)


def _reasks(
    f: _Forecaster,
    task: AgentTask,
    agent: AgentConfig,
    typed: CallForecast,
    chars: Sequence[int],
) -> list[CallForecast]:
    """The re-asks a typed task's call (``typed``, of ``chars``) may take: free unless its
    reply does not fit, so they count in the worst case only."""
    retries = DEFAULT_OUTPUT_RETRIES if task.output_retries is None else task.output_retries
    bound = typed.output_bound if typed.output_bound is not None else ASSUMED_OUTPUT
    out: list[CallForecast] = []
    grown = list(chars)
    for number in range(1, retries + 1):
        grown += [bound * CHARS_PER_TOKEN, REASK_CHARS]  # the invalid reply, then its errors
        call = f.call(f"re-ask {number}", agent, grown, None)
        out.append(replace(call, low_usd=0.0, expected_usd=0.0))
    return out


def _review_chars(
    task: AgentTask,
    reviewer: AgentConfig,
    upstream: Sequence[UpstreamOutput],
    limit: int,
    extra: int,
    draft: int,
) -> list[int]:
    chars = [
        len(str(m["content"]))
        for m in review_messages(task, "", reviewer, upstream, max_context_chars=limit)
    ]
    chars[-1] += extra + draft
    return chars

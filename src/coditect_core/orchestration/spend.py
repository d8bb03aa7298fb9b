r"""What a run spends (tokens and USD, by task and by agent) and the budget it must stay under.

:class:`Spend` is fed one entry per attempt (a retry and a fallback are attempts too) and sums them
in :class:`Tally`\s, the one tally of attempts, tokens and cost. A cost is
``None`` when it is unknown (a model without a price, or a call that failed in a way the
provider may still bill, such as a timeout); sums keep the known part and count the unknown
attempts, so that a partly unknown total is never shown as a complete one (``cost_usd`` is then
``None``; ``cost_known_usd`` is the known part).

:class:`Budget` is a run's limit: once ``max_cost_usd`` (of known costs) or ``max_tokens`` is
reached, the run starts no new task; calls already in flight finish. :class:`BudgetGuard` is the
budget as a task in flight sees it: an agent loop stops before the model call that would pass
it, and the run then stops as if the budget were reached (``stop_reason == "budget"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..llm_abstractions.base_llm import Usage

__all__ = ["Budget", "BudgetGuard", "Spend", "Tally"]


@dataclass(slots=True)
class Tally:
    """Attempts summed: how many, their tokens, their cost."""

    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_known_usd: float = 0.0
    cost_unknown: int = 0

    def add(self, usage: Usage | None, cost: float | None) -> None:
        self.attempts += 1
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
        if cost is None:
            self.cost_unknown += 1
        else:
            self.cost_known_usd += cost

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float | None:
        """The whole cost, or ``None`` if any attempt's cost is unknown."""
        return None if self.cost_unknown else self.cost_known_usd

    @property
    def cost_status(self) -> str:
        """``known``, ``partial`` (some attempts' costs unknown, the others cost something) or
        ``unknown`` (all of them, or the known part is zero: failed attempts that were not
        billed beside attempts of no known price add nothing known, so ``$0 + unknown`` would
        only pass an unknown cost off as a figure)."""
        if not self.cost_unknown:
            return "known"
        if self.cost_unknown == self.attempts or not self.cost_known_usd:
            return "unknown"
        return "partial"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "cost_known_usd": self.cost_known_usd,
            "cost_unknown_attempts": self.cost_unknown,
        }


@dataclass(slots=True)
class Spend:
    """A run's attempts summed: overall, by agent and by task (every attempt: a task's retries
    and fallbacks as well as its last one)."""

    total: Tally = field(default_factory=Tally)
    by_agent: dict[str | None, Tally] = field(default_factory=dict)
    by_task: dict[str, Tally] = field(default_factory=dict)

    def record(
        self, task_id: str, agent: str | None, usage: Usage | None, cost: float | None
    ) -> None:
        """Count one attempt of ``task_id``, made by ``agent``."""
        self.total.add(usage, cost)
        self.by_agent.setdefault(agent, Tally()).add(usage, cost)
        self.by_task.setdefault(task_id, Tally()).add(usage, cost)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.total.to_dict(),
            "by_agent": {name or "?": t.to_dict() for name, t in self.by_agent.items()},
        }


@dataclass(frozen=True, slots=True)
class Budget:
    """A run's limits; ``None`` is no limit."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            raise ValueError(f"max_cost_usd must be >= 0, got {self.max_cost_usd!r}")
        if self.max_tokens is not None and self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {self.max_tokens!r}")

    @property
    def active(self) -> bool:
        return self.max_cost_usd is not None or self.max_tokens is not None

    def reached(self, spend: Spend) -> str | None:
        """Which limit ``spend`` has reached (``"max_cost_usd"``, ``"max_tokens"``), if any."""
        total = spend.total
        if self.max_cost_usd is not None and total.cost_known_usd >= self.max_cost_usd:
            return "max_cost_usd"
        if self.max_tokens is not None and total.tokens >= self.max_tokens:
            return "max_tokens"
        return None

    def describe(self, spend: Spend) -> dict[str, Any]:
        """The limits and what was spent against them (for the run summary)."""
        return {
            "max_cost_usd": self.max_cost_usd,
            "max_tokens": self.max_tokens,
            "spent_cost_usd": spend.total.cost_known_usd,
            "spent_tokens": spend.total.tokens,
            "cost_unknown_attempts": spend.total.cost_unknown,
            "reached": self.reached(spend),
        }


@dataclass(slots=True)
class BudgetGuard:
    """A run's ``budget`` as a task in flight checks it before each further model call: the
    run's ``spend`` so far (the board's tally, a function: it is replaced per run), and which
    limit a task stopped short of (``stopped``; the run then stops starting tasks)."""

    budget: Budget
    spend: Callable[[], Spend]
    stopped: str | None = None

    def would_pass(
        self,
        tokens: int,
        cost: float | None,
        *,
        own_tokens: int = 0,
        own_cost: float | None = 0.0,
    ) -> str | None:
        """Which limit a call of ``tokens`` (input and output bound) costing ``cost`` would
        pass, counting the run's spend and the calling task's own not yet in it (``own_*``);
        ``None`` if it fits. An unknown cost passes no cost limit (as :meth:`Budget.reached`
        counts known costs only)."""
        total = self.spend().total
        budget = self.budget
        if budget.max_tokens is not None and total.tokens + own_tokens + tokens > budget.max_tokens:
            return "max_tokens"
        if budget.max_cost_usd is not None and cost is not None:
            spent = total.cost_known_usd + (own_cost or 0.0)
            if spent + cost > budget.max_cost_usd:
                return "max_cost_usd"
        return None

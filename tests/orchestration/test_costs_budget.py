"""Cost arithmetic (the shipped price table, overrides, unknown prices kept unknown) and run
budgets (no new task once reached, calls in flight finish, the unstarted tasks listed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coditect_core.app.session import ProjectSession
from coditect_core.errors import (
    LlmConnectionError,
    LlmContentFilterError,
    LlmNotInstalledError,
    LlmRateLimitError,
    LlmServerError,
    LlmTimeoutError,
)
from coditect_core.llm_abstractions.base_llm import Usage
from coditect_core.llm_abstractions.pricing import (
    Price,
    PriceBook,
    call_cost,
    default_price_source,
    price_data_version,
)
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskExecutor,
)
from coditect_core.orchestration.attempts import failure_cost
from coditect_core.orchestration.spend import Budget, Spend, Tally

# ---------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("provider", "model", "usage", "cost"),
    [
        # genai-prices' list prices (USD per million tokens) in its packaged data
        ("openai-gpt", "gpt-4o-mini", Usage(1_000_000, 1_000_000), 0.15 + 0.6),
        ("openai-gpt", "gpt-4o-mini-2024-07-18", Usage(1_000_000, 0), 0.15),  # a snapshot
        ("openai-gpt", "gpt-4o-2024-05-13", Usage(1_000_000, 0), 5.0),  # priced apart
        ("anthropic-claude", "claude-sonnet-4-5-20250929", Usage(100_000, 0), 0.3),
        ("google-gemini", "models/gemini-2.5-flash", Usage(0, 1_000_000), 2.5),
        ("local", "SmolLM2-135M-Instruct.Q4_1.gguf", Usage(1_000, 1_000), 0.0),  # free
        # the SDKs' default models, unknown to the old hand-made table
        ("openai-gpt", "gpt-5.4-mini", Usage(1_000_000, 1_000_000), 0.75 + 4.5),
        ("anthropic-claude", "claude-sonnet-5-5", Usage(1_000_000, 1_000_000), 2.0 + 10.0),
        ("google-gemini", "gemini-3.8-flash", Usage(1_000_000, 1_000_000), 0.75 + 3.75),
        # cached input at its own price: 800k fresh + 200k read from the cache
        ("openai-gpt", "gpt-5.4-mini", Usage(1_000_000, 0, cache_read_tokens=200_000), 0.615),
        # Anthropic also bills cache writes: 700k fresh + 200k read + 100k written
        (
            "anthropic-claude",
            "claude-sonnet-5-5",
            Usage(1_000_000, 0, cache_read_tokens=200_000, cache_write_tokens=100_000),
            1.4 + 0.02 + 0.25,
        ),
        # a long prompt's tier: over 200k tokens, all of them at the higher rate
        ("anthropic-claude", "claude-sonnet-4-5", Usage(100_000, 0), 0.3),
        ("anthropic-claude", "claude-sonnet-4-5", Usage(300_000, 0), 1.8),
        ("anthropic-claude", "gpt-4o", Usage(1, 1), None),  # another provider's model
        ("openai-gpt", "no-such-model-1", Usage(1, 1), None),  # unknown, not guessed
        ("openai-compatible", "llama3.2", Usage(1, 1), None),
        ("fake", "fake-model", Usage(1, 1), None),
        (None, None, Usage(1, 1), None),
    ],
)
def test_prices_from_genai_prices(
    provider: str | None, model: str | None, usage: Usage, cost: float | None
) -> None:
    found = default_price_source().cost(provider, model, usage)
    assert found == (pytest.approx(cost) if cost is not None else None)


def _vendor_price(vendor: str, model: str) -> float:
    """What genai-prices asks of ``vendor`` for 1M input tokens of ``model`` now (DeepSeek's
    price depends on the time of day: 0.135 off-peak, 0.27 otherwise)."""
    from genai_prices import calc_price
    from genai_prices import types as gp_types

    usage = gp_types.Usage(input_tokens=1_000_000, output_tokens=0)
    return float(calc_price(usage, model, provider_id=vendor).total_price)


@pytest.mark.parametrize(
    ("base_url", "model", "cost"),
    [
        # known vendors, by their URL (DeepSeek's price is the vendor's at this time of day)
        ("https://api.deepseek.com/v1", "deepseek-chat", "deepseek"),
        ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", 0.59),
        ("http://127.0.0.1:8000/v1", "gpt-4o", None),  # a server of one's own: unknown
        ("https://api.deepseek.com/v1", "no-such-model", None),
        (None, "gpt-4o", None),
    ],
)
def test_an_openai_compatible_server_is_priced_by_its_url(
    base_url: str | None, model: str, cost: float | str | None
) -> None:
    if isinstance(cost, str):
        cost = _vendor_price(cost, model)
        assert cost in (pytest.approx(0.135), pytest.approx(0.27))
    found = PriceBook().cost("a", "openai-compatible", model, Usage(1_000_000, 0), base_url)
    assert found == (pytest.approx(cost) if cost is not None else None)


def test_the_sdks_default_models_have_a_price() -> None:
    """Each provider class's own default model is priced (the old hand-made table knew none)."""
    from coditect_core.llm_abstractions.claude import Claude
    from coditect_core.llm_abstractions.gemini import Gemini
    from coditect_core.llm_abstractions.gpt import Gpt

    for cls in (Gpt, Claude, Gemini):
        cost = default_price_source().cost(cls.provider, cls.default_model, Usage(1000, 1000))
        assert cost is not None, (cls.provider, cls.default_model)
        assert cost > 0


def test_the_price_data_is_named_and_packaged() -> None:
    import genai_prices

    version = price_data_version()
    assert version == f"genai-prices {genai_prices.__version__} (packaged data)"
    assert default_price_source().version == version


def test_pricing_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prices come from the packaged data: with every socket refused, a call is still priced,
    and genai-prices' online updater is never started."""
    import socket

    from genai_prices import data_snapshot, update_prices

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    book = PriceBook()
    assert book.cost("a", "openai-gpt", "gpt-5.4-mini", Usage(1_000_000, 0)) == pytest.approx(0.75)
    assert data_snapshot._custom_snapshot is None  # nothing replaced the packaged snapshot
    assert data_snapshot.get_snapshot().from_auto_update is False
    assert update_prices._shared_updater.ref_count == 0  # no updater was started


def test_cost_arithmetic() -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=500)
    assert Price(3.0, 15.0).cost(usage) == pytest.approx(0.003 + 0.0075)
    assert call_cost(Price(0.15, 0.6), Usage(2_000_000, 1_000_000)) == pytest.approx(0.9)
    assert call_cost(None, usage) is None  # unknown price: unknown cost, never 0
    assert call_cost(Price(3.0, 15.0), None) is None  # unknown tokens: unknown cost
    assert call_cost(Price(0.0, 0.0), usage) == 0.0  # a known zero is a zero
    with pytest.raises(ValueError, match="negative"):
        Price(-1.0, 0.0)


class _Table:
    """A price source of one model at 2.5 / 10 USD per million tokens."""

    version = "test table"

    def cost(
        self, provider: str | None, model: str | None, usage: Usage, base_url: str | None = None
    ) -> float | None:
        if (provider, model) != ("openai-gpt", "gpt-4o"):
            return None
        return call_cost(Price(2.5, 10.0), usage)

    def context_window(self, provider: str | None, model: str | None) -> int | None:
        return None


def test_an_agents_price_wins_over_the_table() -> None:
    book = PriceBook({"cheap": Price(1.0, 2.0)}, source=_Table())
    usage = Usage(1_000_000, 1_000_000)
    assert book.cost("cheap", "openai-gpt", "gpt-4o", usage) == pytest.approx(3.0)
    assert book.cost("other", "openai-gpt", "gpt-4o", usage) == pytest.approx(12.5)
    assert book.cost("other", "openai-gpt", "unlisted", usage) is None
    assert book.cost("cheap", "fake", "anything", usage) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("error", "cost"),
    [
        (LlmRateLimitError("429"), 0.0),
        (LlmServerError("overloaded", status_code=529), 0.0),
        (LlmNotInstalledError("no sdk"), 0.0),
        (LlmTimeoutError("no answer"), None),
        (LlmConnectionError("reset"), None),
        (LlmContentFilterError("filtered"), None),
    ],
)
def test_failed_requests_cost_zero_only_when_nothing_was_billed(
    error: Exception, cost: float | None
) -> None:
    assert failure_cost(error) == cost


def test_sums_keep_unknown_costs_unknown() -> None:
    tally = Tally()
    tally.add(Usage(10, 5), 0.25)
    tally.add(None, None)
    assert tally.cost_usd is None
    assert tally.cost_known_usd == 0.25
    assert tally.to_dict()["cost_unknown_attempts"] == 1
    spend = Spend()
    spend.record("T1", "a", None, 0.0)  # an attempt that failed, then the one that answered
    spend.record("T1", "b", Usage(100, 50), 0.5)
    spend.record("T2", "a", Usage(1, 1), None)
    t1, t2 = spend.by_task["T1"], spend.by_task["T2"]
    assert (t1.cost_usd, t1.cost_known_usd, t1.attempts) == (0.5, 0.5, 2)
    assert (t2.cost_usd, t2.cost_known_usd, t2.attempts) == (None, 0.0, 1)
    data = spend.to_dict()
    assert data["attempts"] == 3
    assert data["total_tokens"] == 152
    assert data["cost_usd"] is None
    assert data["cost_known_usd"] == 0.5
    assert data["by_agent"]["a"]["attempts"] == 2
    assert data["by_agent"]["b"]["cost_usd"] == 0.5


def _fake(name: str = "fake", **options: Any) -> AgentConfig:
    return AgentConfig(name, "custom", provider="fake", provider_options=options)


async def test_every_attempt_task_agent_and_run_is_priced() -> None:
    prices = PriceBook({"priced": Price(1_000.0, 2_000.0)})
    registry = AgentRegistry([_fake("priced"), _fake("unpriced")])
    orchestrator = ProjectOrchestrator(executor=TaskExecutor(registry, prices=prices))
    orchestrator.add_tasks(
        [
            AgentTask("A", "a", "Alpha.", agent="priced"),
            AgentTask("B", "b", "Beta.", agent="unpriced"),
        ]
    )
    summary = await orchestrator.run()
    a, b = orchestrator.get_result("A"), orchestrator.get_result("B")
    assert a is not None
    assert b is not None
    assert a.usage is not None
    expected = (a.usage.prompt_tokens * 1_000 + a.usage.completion_tokens * 2_000) / 1e6
    assert a.cost_usd == pytest.approx(expected)
    assert b.cost_usd is None  # the fake model has no price
    assert summary.cost["cost_known_usd"] == pytest.approx(expected)
    assert summary.cost["cost_usd"] is None
    assert summary.cost["by_agent"]["priced"]["cost_usd"] == pytest.approx(expected)
    assert summary.cost["by_agent"]["unpriced"]["cost_usd"] is None
    rows = {r["task_id"]: r for r in orchestrator.generate_report()["tasks"]}
    assert rows["A"]["cost_usd"] == pytest.approx(expected)
    assert rows["B"]["cost_usd"] is None
    assert summary.to_dict()["cost"] == summary.cost


# ---------------------------------------------------------------------------- budgets


def _orchestrator(n: int, budget: Budget, latency: float = 0.0) -> ProjectOrchestrator:
    prices = PriceBook({"fake": Price(1_000.0, 1_000.0)})  # USD 0.001 a token
    registry = AgentRegistry([_fake(latency=latency)])
    orchestrator = ProjectOrchestrator(
        executor=TaskExecutor(registry, prices=prices), budget=budget
    )
    orchestrator.add_tasks(AgentTask(f"T{i}", f"task {i}", "Go.", agent="fake") for i in range(n))
    return orchestrator


async def _tokens_of_one_task() -> int:
    """What one of these tasks uses (every one the same: the same prompt and reply length)."""
    result = await TaskExecutor(AgentRegistry([_fake()])).execute(
        AgentTask("T0", "task 0", "Go.", agent="fake")
    )
    assert result.usage is not None
    return result.usage.total_tokens


@pytest.mark.parametrize("limit", ["max_tokens", "max_cost_usd"])
async def test_budget_reached_starts_no_new_task(limit: str) -> None:
    per_task = await _tokens_of_one_task()
    budget = (
        Budget(max_tokens=int(per_task * 2.5))
        if limit == "max_tokens"
        else Budget(max_cost_usd=per_task * 2.5 / 1_000)
    )
    orchestrator = _orchestrator(10, budget)
    summary = await orchestrator.run(max_concurrency=1)
    assert summary.stop_reason == "budget"
    assert summary.budget_stopped
    assert summary.counts["completed"] == 3  # the third crossed the line
    assert summary.unstarted == [f"T{i}" for i in range(3, 10)]
    assert summary.budget is not None
    assert summary.budget["reached"] == limit
    assert summary.budget["spent_tokens"] == 3 * per_task
    assert summary.budget["spent_cost_usd"] == pytest.approx(3 * per_task / 1_000)
    data = summary.to_dict()
    assert data["stop_reason"] == "budget"
    assert data["unstarted"] == summary.unstarted
    # the next run (a larger budget) takes the rest
    orchestrator.budget = Budget(max_tokens=per_task * 100)
    again = await orchestrator.run(max_concurrency=1)
    assert again.ok
    assert again.cost["attempts"] == 7


async def test_calls_in_flight_finish_when_the_budget_is_reached() -> None:
    orchestrator = _orchestrator(12, Budget(max_tokens=1), latency=0.05)
    summary = await orchestrator.run(max_concurrency=4)
    assert summary.stop_reason == "budget"
    counts = summary.counts
    assert counts["completed"] == 4  # the four started together all finished
    assert counts["cancelled"] == 0
    assert counts["pending"] == 8


async def test_a_zero_budget_runs_nothing() -> None:
    summary = await _orchestrator(3, Budget(max_cost_usd=0.0)).run()
    assert summary.stop_reason == "budget"
    assert summary.unstarted == ["T0", "T1", "T2"]
    assert summary.cost["attempts"] == 0


PROJECT = """
project: budgeted
budget: {max_cost_usd: 5.0, max_tokens: 100000}
defaults: {agent: a, timeout: 30}
agents:
  a:
    type: custom
    provider: fake
    fallbacks: [b]
    fallback_on: any
    requests_per_minute: 120
    tokens_per_minute: 90000
    max_concurrency: 2
    price: {input: 1.5, output: 6.0}
  b: {type: custom, provider: fake}
tasks:
  - {id: T1, title: one}
  - {id: T2, title: two, timeout: 5}
"""


def test_the_project_files_settings_reach_the_run(tmp_path: Path) -> None:
    path = tmp_path / "project.yaml"
    path.write_text(PROJECT)
    session = ProjectSession.open(path, max_tokens=10)
    try:
        executor = session.orchestrator.executor
        assert executor.task_timeouts == {"T1": 30.0, "T2": 5.0}
        assert executor.fallback_on == {"a": "any", "b": "retryable"}
        gate = executor.gate("a")
        assert gate.limits.requests_per_minute == 120
        assert gate.limits.tokens_per_minute == 90000
        assert gate.limits.max_concurrency == 2
        assert not executor.gate("b").limits.active
        million = Usage(1_000_000, 1_000_000)
        assert executor.prices.cost("a", "fake", "fake-model", million) == pytest.approx(7.5)
        assert executor.prices.cost("b", "fake", "fake-model", million) is None
        assert session.orchestrator.budget == Budget(max_cost_usd=5.0, max_tokens=10)
    finally:
        asyncio.run(session.aclose())

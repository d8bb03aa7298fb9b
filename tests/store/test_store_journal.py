"""The call journal in the state store: migration 4, what a request's key covers, what is
stored (scrubbed, messages once), and a long conversation growing linearly."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import LlmConfigurationError, LlmJournalMissError, StateError
from coditect_core.llm_abstractions.messages import Messages
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.orchestration.journal import (
    JournalAnswer,
    JournaledLlm,
    JournalRequest,
    cache_allowed,
    journal_request,
)
from coditect_core.store import StateStore
from coditect_core.store.schema import MIGRATIONS, SCHEMA_VERSION, open_database

JOURNAL_TABLES = ("journal_messages", "journal_prefixes", "journal_requests", "journal_calls")


def _stored_bytes(path: Path) -> int:
    """The bytes of every value in the journal's tables (text by length, numbers as 8)."""
    conn = sqlite3.connect(path)
    try:
        total = 0
        for table in JOURNAL_TABLES:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            expr = " + ".join(
                f"coalesce(CASE typeof({c}) WHEN 'text' THEN length(CAST({c} AS BLOB)) "
                f"ELSE 8 END, 0)"
                for c in columns
            )
            total += conn.execute(f"SELECT coalesce(sum({expr}), 0) FROM {table}").fetchone()[0]
        return int(total)
    finally:
        conn.close()


def test_a_version_2_database_migrates_to_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = open_database(path, migrations=tuple(m for m in MIGRATIONS if m[0] <= 2))
    assert old.execute("PRAGMA user_version").fetchone()[0] == 2
    old.execute("INSERT INTO projects(id, name, created_at) VALUES (1, 'proj', 1.0)")
    old.execute(
        "INSERT INTO runs(id, project_id, started_at, status) VALUES (1, 1, 1.0, 'succeeded')"
    )
    old.execute(
        "INSERT INTO tasks(id, project_id, task_id, status, updated_at) "
        "VALUES (1, 1, 'A', 'completed', 1)"
    )
    old.execute(
        "INSERT INTO attempts(run_id, task_ref, started_at, status, output) "
        "VALUES (1, 1, 1.0, 'succeeded', 'old answer')"
    )
    old.close()

    with StateStore.open(path) as store:
        (attempt,) = store.attempts("proj")
        assert (attempt.output, attempt.cached) == ("old answer", False)
        assert store.journal_stats("proj").requests == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(JOURNAL_TABLES) <= names
        with pytest.raises(sqlite3.IntegrityError):  # a source the journal does not know
            conn.execute(
                "INSERT INTO journal_calls(key, project_id, at, source, text) "
                "VALUES ('k', 1, 1.0, 'guess', '')"
            )
    finally:
        conn.close()


def test_the_key_covers_what_determines_the_answer_and_nothing_else() -> None:
    base = journal_request("openai-gpt", "m", "http://x", {"temperature": 0}, "hello")
    same = journal_request(
        "openai-gpt", "m", "http://x", {"temperature": 0, "timeout": 9, "retry": object()}, "hello"
    )
    assert base.key == same.key  # timeout, retry policy: not the answer's
    for other in (
        journal_request("anthropic-claude", "m", "http://x", {"temperature": 0}, "hello"),
        journal_request("openai-gpt", "m2", "http://x", {"temperature": 0}, "hello"),
        journal_request("openai-gpt", "m", "http://y", {"temperature": 0}, "hello"),
        journal_request("openai-gpt", "m", "http://x", {"temperature": 0.5}, "hello"),
        journal_request("openai-gpt", "m", "http://x", {"temperature": 0, "seed": 1}, "hello"),
        journal_request(
            "openai-gpt", "m", "http://x", {"temperature": 0, "max_tokens": 5}, "hello"
        ),
        journal_request(
            "openai-gpt", "m", "http://x", {"temperature": 0, "tools": [{"name": "t"}]}, "hello"
        ),
        journal_request(
            "openai-gpt", "m", "http://x", {"temperature": 0, "response_format": {"a": 1}}, "hello"
        ),
        journal_request("openai-gpt", "m", "http://x", {"temperature": 0}, "hello!"),
        journal_request(
            "openai-gpt",
            "m",
            "http://x",
            {"temperature": 0},
            [{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}],
        ),
    ):
        assert other.key != base.key


def test_cache_allowed_by_setting_and_temperature() -> None:
    assert not cache_allowed(None, False, 0)
    assert cache_allowed(None, True, 0)
    assert cache_allowed(None, True, None)
    assert not cache_allowed(None, True, 0.7)  # sampled: not unless asked for
    assert cache_allowed("on", False, 0)
    assert not cache_allowed("on", False, 1.0)
    assert cache_allowed("always", False, 1.0)
    assert not cache_allowed("off", True, 0)


async def _journaled(
    store: StateStore,
    llm: FakeLlm,
    *,
    replay_of: int | None = None,
    use_cache: bool = False,
    settings: dict | None = None,
) -> JournaledLlm:
    info = await store.begin_run("proj")
    journal = await store.run_journal(info.run_id, replay_of=replay_of).open()

    def request(messages: Messages, options: Mapping[str, Any]) -> JournalRequest:
        return journal_request(llm.provider, llm.model, None, settings or {}, messages, options)

    return JournaledLlm(llm, journal, request=request, task_id="T", use_cache=use_cache)


async def test_answers_are_recorded_scrubbed_and_served_at_no_cost(tmp_path: Path) -> None:
    secret = "sk-journal-test-secret-0123456789"
    path = tmp_path / "state.db"
    store = StateStore.open(path, secrets=[secret])
    try:
        llm = FakeLlm(["the answer " + secret])
        first = await _journaled(store, llm, settings={"temperature": 0, "headers": secret})
        prompt = [{"role": "user", "content": f"use {secret} please"}]
        response = await first.request_async(prompt)
        assert not response.cached
        assert len(llm.calls) == 1
        await store.flush()
        await store.finish_run(first.journal.run_id, "succeeded")  # type: ignore[attr-defined]

        second = await _journaled(
            store, llm, use_cache=True, settings={"temperature": 0, "headers": secret}
        )
        again = await second.request_async(prompt)
        assert len(llm.calls) == 1  # the provider was not asked
        assert again.cached
        assert again.cost_usd == 0.0
        assert again.text.startswith("the answer ")
        assert secret not in again.text
        await store.flush()
        stats = store.journal_stats("proj")
        assert (stats.requests, stats.provider_calls, stats.cache_hits) == (1, 1, 1)
    finally:
        store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())  # noqa: ASYNC240
    assert secret.encode() not in raw
    assert b"use " in raw  # the message itself is kept (masked)


async def test_a_replay_miss_says_not_in_the_journal(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        llm = FakeLlm(["never"])
        journaled = await _journaled(store, llm, replay_of=1)
        with pytest.raises(LlmJournalMissError, match="not in the journal") as caught:
            await journaled.request_async("what was said?")
        assert isinstance(caught.value, LlmConfigurationError)  # no request was made
        assert llm.calls == []


async def test_a_200_turn_conversation_grows_linearly(tmp_path: Path) -> None:
    """Each turn sends the whole conversation so far; the journal keeps each message and each
    prefix once, so a turn costs the same bytes at turn 200 as at turn 10."""
    path = tmp_path / "state.db"
    with StateStore.open(path) as store:
        llm = FakeLlm(default=lambda messages: f"reply number {len(messages):04d} " + "x" * 200)
        journaled = await _journaled(store, llm)
        messages: list[dict[str, str]] = [{"role": "system", "content": "You are terse."}]
        per_turn: dict[int, int] = {}
        before = 0
        for turn in range(1, 201):
            messages.append({"role": "user", "content": f"question {turn:04d} " + "q" * 200})
            reply = await journaled.request_async(messages)
            messages.append({"role": "assistant", "content": reply.text})
            if turn in (9, 10, 99, 100, 199, 200):
                await store.flush()
                now = _stored_bytes(path)
                if turn in (10, 100, 200):
                    per_turn[turn] = now - before
                before = now
    # The whole conversation is ~200 x 2 x 215 bytes of text at turn 200; stored again at
    # every turn it would cost ~86 KB for that turn alone.
    assert per_turn[10] < 2000
    assert per_turn[100] <= per_turn[10] * 1.05
    assert per_turn[200] <= per_turn[10] * 1.05
    print("journal bytes per turn at turns 10, 100, 200:", per_turn)


def test_journal_answer_of_a_response_keeps_what_matters() -> None:
    from coditect_core.llm_abstractions.base_llm import LlmResponse, Usage

    answer = JournalAnswer.of(
        LlmResponse("t", "m", Usage(3, 4), "stop", cost_usd=0.5, response_id="resp-1")
    )
    assert (answer.text, answer.usage.total_tokens, answer.finish_reason, answer.response_id) == (
        "t",
        7,
        "stop",
        "resp-1",
    )


async def test_clear_forgets_the_project_journal(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        journaled = await _journaled(store, FakeLlm(["a", "b"]))
        await journaled.request_async([{"role": "user", "content": "one"}])
        await journaled.request_async(
            [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "two"},
            ]
        )
        await store.finish_run(journaled.journal.run_id, "succeeded")  # type: ignore[attr-defined]
        assert store.journal_stats("proj").provider_calls == 2
        assert store.clear_journal("proj") == 2
        assert store.journal_stats("proj").requests == 0
        counts = store.read(
            lambda conn: [
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in JOURNAL_TABLES
            ]
        )
        assert counts == [0, 0, 0, 0]


def test_a_migration_numbered_below_one_applied_is_still_applied(tmp_path: Path) -> None:
    """Two branches each add a migration (this one's journal was numbered 4 while another's 3
    was still unmerged): a database that got the higher one first still gets the lower."""
    path = tmp_path / "state.db"
    low = (SCHEMA_VERSION + 1, "test: one branch's column", "ALTER TABLE attempts ADD COLUMN lo")
    high = (SCHEMA_VERSION + 2, "test: another's column", "ALTER TABLE attempts ADD COLUMN hi")
    open_database(path, migrations=(*MIGRATIONS, high)).close()
    merged = (*MIGRATIONS, low, high)
    with pytest.raises(StateError, match="lacks migration"):
        open_database(path, readonly=True, migrations=merged)
    conn = open_database(path, migrations=merged)
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m[0] for m in merged]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(attempts)")}
        assert {"lo", "hi", "cached"} <= columns
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 2
    finally:
        conn.close()


async def test_the_executor_keys_a_request_as_a_run_journals_it(tmp_path: Path) -> None:
    """``TaskExecutor.journal_request`` (no LLM built) gives the key a run journals under, and
    ``StateStore.answered`` tells which keys the journal answers: a forecast's seam."""
    from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask
    from coditect_core.orchestration.executor import TaskExecutor

    agent = AgentConfig("fake", "custom", provider="fake", temperature=0)
    executor = TaskExecutor(AgentRegistry([agent]), default_agent="fake")
    task = AgentTask("T1", "Say hi", "Say hi.", agent="fake")
    messages = executor.journal_request(agent, [{"role": "user", "content": "x"}])
    with StateStore.open(tmp_path / "state.db") as store:
        info = await store.begin_run("proj")
        executor.journal = await store.run_journal(info.run_id).open()
        result = await executor.execute(task)
        assert result.succeeded
        await store.finish_run(info.run_id, "succeeded")
        (call,) = store.read(lambda conn: conn.execute("SELECT key FROM journal_calls").fetchall())
        from coditect_core.orchestration.prompts import build_messages

        expected = executor.journal_request(agent, build_messages(task, agent, ()))
        assert call[0] == expected.key
        assert store.answered("proj", [expected.key, messages.key]) == {expected.key}
        assert store.answered("other", [expected.key]) == set()
    await executor.aclose()

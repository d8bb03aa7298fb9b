"""API keys never reach the state database: the scrub, and canaries searched in the file bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coditect_core.llm_abstractions.keys import Secret
from coditect_core.secrets import MASK, Scrubber, secret_env_values
from coditect_core.store import StateStore
from coditect_core.store.records import AttemptOutcome

pytestmark = pytest.mark.timeout(60)

ENV_CANARY = "sk-canary-0123456789abcdefENV"
ADDED_CANARY = "sk-canary-added-9876543210"
OBJECT_CANARY = "sk-canary-object-5555555555"


def _bytes_of(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name)}


async def test_canary_key_appears_nowhere_in_the_database_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_TEST_API_KEY", ENV_CANARY)
    db = tmp_path / ".coditect" / "state.db"
    store = StateStore.open(db)
    store.add_secrets(ADDED_CANARY)
    run = await store.begin_run(
        "proj",
        options={
            "agents": {"claude": {"api_key": "sk-literal-in-options-000", "model": "m"}},
            "env_echo": f"key={ENV_CANARY}",
            "max_tokens": 512,
        },
    )
    await store.define_tasks(run.run_id, {"T": "sha256:x"})
    attempt = await store.task_started(
        run.run_id, "T", agent="claude", model=f"model-{ADDED_CANARY}", interface="api",
        note=f"starting with {ENV_CANARY}",
    )  # fmt: skip
    await store.task_finished(
        run.run_id,
        "T",
        "failed",
        note=f"failed: 401 Unauthorized for key {ENV_CANARY}",
        attempt_id=attempt,
        attempt=AttemptOutcome(
            "failed",
            error=f"Error code: 401 - invalid x-api-key {ENV_CANARY} / {ADDED_CANARY}",
            output=f"echo {ENV_CANARY}",
        ),
    )
    second = await store.attempt_started(run.run_id, "T", agent=Secret(OBJECT_CANARY))
    await store.attempt_finished(second, AttemptOutcome("failed", error=Secret(OBJECT_CANARY)))

    for name, data in _bytes_of(db).items():  # while open: the WAL holds the recent pages
        for canary in (ENV_CANARY, ADDED_CANARY, OBJECT_CANARY, "sk-literal-in-options-000"):
            assert canary.encode() not in data, f"{canary} found in {name}"
    assert any(name.endswith("-wal") for name in _bytes_of(db))
    await store.finish_run(run.run_id, "failed")
    await store.aclose()

    files = _bytes_of(db)
    assert "state.db" in files
    for name, data in files.items():
        for canary in (ENV_CANARY, ADDED_CANARY, OBJECT_CANARY, "sk-literal-in-options-000"):
            assert canary.encode() not in data, f"{canary} found in {name}"
    # The messages themselves were kept, redacted: the scrub replaced, it did not drop.
    conn = sqlite3.connect(db)
    error = conn.execute("SELECT error FROM attempts ORDER BY id LIMIT 1").fetchone()[0]
    assert error == f"Error code: 401 - invalid x-api-key {MASK} / {MASK}"
    options = conn.execute("SELECT options FROM runs").fetchone()[0]
    assert '"api_key":"***"' in options
    assert '"max_tokens":512' in options
    conn.close()


def test_scrubber_finds_secret_variables_by_name() -> None:
    env = {
        "OPENAI_API_KEY": "sk-openai-123456",
        "GITHUB_TOKEN": "ghp_abcdefghijkl",
        "CLIENT_SECRET": "s3cr3t-value-xyz",
        "API_KEY": "plain-api-key-value",
        "SHORT_TOKEN": "1",  # too short to scrub safely
        "HOME": "/root/home-directory",
        "PATH": "/usr/bin:/bin",
    }
    assert secret_env_values(env) == {
        "sk-openai-123456",
        "ghp_abcdefghijkl",
        "s3cr3t-value-xyz",
        "plain-api-key-value",
    }


def test_scrubber_text_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_SECRET", "abcdefgh-long")
    scrub = Scrubber(["abcdefgh"])  # a secret inside another: the longer is replaced whole
    assert scrub.text("a abcdefgh-long b abcdefgh c") == f"a {MASK} b {MASK} c"
    assert scrub.text(None) is None
    assert scrub.text(Secret("whatever-it-is")) == MASK
    assert scrub.text(12) == "12"
    data = {"token": 5, "prompt_tokens": 5, "max_tokens": 5, "nested": [{"password": "p"}]}
    assert scrub.json(data) == (
        '{"max_tokens":5,"nested":[{"password":"***"}],"prompt_tokens":5,"token":"***"}'
    )
    unrelated = Scrubber(use_environ=False)
    assert unrelated.text("abcdefgh-long") == "abcdefgh-long"

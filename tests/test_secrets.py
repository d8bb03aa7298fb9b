"""The redacting log filter masks keys in messages and in exception text."""

from __future__ import annotations

import io
import logging

import pytest

from coditect_core.secrets import RedactingFilter, mask, register_secret

CANARY = "sk-canary-7f3a9c2e51d04b88"


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_env_key_is_masked_in_message_and_args(
    monkeypatch: pytest.MonkeyPatch, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    logger, stream = captured
    logger.info("calling with %s and key=%s", "gpt", CANARY)
    out = stream.getvalue()
    assert CANARY not in out
    assert "key=***" in out
    assert "calling with gpt" in out


def test_key_in_exception_text_is_masked(
    monkeypatch: pytest.MonkeyPatch, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    logger, stream = captured
    try:
        raise RuntimeError(f"server said: bad key {CANARY}")
    except RuntimeError:
        logger.exception("call failed")
    out = stream.getvalue()
    assert "RuntimeError" in out
    assert CANARY not in out


def test_registered_secret_is_masked_and_short_values_are_not() -> None:
    register_secret("project-file-secret-123")
    register_secret("abc")  # too short to mask safely
    assert mask("x project-file-secret-123 y abc") == "x *** y abc"


def test_non_secret_env_values_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_DIRECTORY_NAME", "visible-value")
    assert mask("visible-value") == "visible-value"

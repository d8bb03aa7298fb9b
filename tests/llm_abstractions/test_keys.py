"""API key lookup order, the missing-key message, and a Secret that never shows."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from coditect_core.errors import LlmConfigurationError
from coditect_core.llm_abstractions import BaseLlm, CallParams, LlmResponse, Message
from coditect_core.llm_abstractions.keys import Secret, resolve_api_key
from coditect_core.secrets import mask

CANARY = "sk-test-canary-0b5e4d1f9a"


class GeminiLike(BaseLlm):
    """A provider with two key variables, in the order Gemini uses."""

    provider = "gemini-like"
    default_model = "m"
    api_key_env: ClassVar[tuple[str, ...]] = (
        "CODITECT_TEST_GEMINI_KEY",
        "CODITECT_TEST_GOOGLE_KEY",
    )

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        raise AssertionError("no call is made in these tests")


class NoKey(GeminiLike):
    provider = "no-key"
    api_key_env: ClassVar[tuple[str, ...]] = ()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CODITECT_TEST_GEMINI_KEY", "CODITECT_TEST_GOOGLE_KEY", "CODITECT_TEST_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_explicit_key_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_KEY", "from-env")
    assert resolve_api_key("explicit", ["CODITECT_TEST_KEY"], provider="p").get() == "explicit"


def test_environment_is_used_without_explicit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_KEY", "from-env")
    assert resolve_api_key(None, ["CODITECT_TEST_KEY"], provider="p").get() == "from-env"
    assert resolve_api_key("", ["CODITECT_TEST_KEY"], provider="p").get() == "from-env"


def test_blank_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_GEMINI_KEY", "   ")
    monkeypatch.setenv("CODITECT_TEST_GOOGLE_KEY", " google-key\n")
    assert GeminiLike().api_key == Secret("google-key")


def test_first_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_GEMINI_KEY", "gemini-key")
    monkeypatch.setenv("CODITECT_TEST_GOOGLE_KEY", "google-key")
    llm = GeminiLike()
    assert llm.api_key is not None
    assert llm.api_key.get() == "gemini-key"


def test_second_variable_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_GOOGLE_KEY", "google-key")
    llm = GeminiLike()
    assert llm.api_key is not None
    assert llm.api_key.get() == "google-key"


def test_explicit_key_wins_in_a_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_TEST_GEMINI_KEY", "gemini-key")
    llm = GeminiLike(api_key="explicit")
    assert llm.api_key is not None
    assert llm.api_key.get() == "explicit"


def test_missing_key_names_every_variable_at_construction() -> None:
    with pytest.raises(LlmConfigurationError) as info:
        GeminiLike()
    text = str(info.value)
    assert "CODITECT_TEST_GEMINI_KEY or CODITECT_TEST_GOOGLE_KEY" in text
    assert "api_key" in text
    assert "api_key=" not in text  # the command's words, not a Python argument (issue 18)
    assert info.value.message == (
        "no API key: set CODITECT_TEST_GEMINI_KEY or CODITECT_TEST_GOOGLE_KEY "
        "(or give the agent an api_key)"
    )
    assert info.value.provider == "gemini-like"


def test_provider_without_key_variables_needs_no_key() -> None:
    assert NoKey().api_key is None
    assert NoKey(api_key="given").api_key == Secret("given")


def test_secret_never_shows() -> None:
    secret = Secret(CANARY)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), f"{secret!s}"]
    assert all(CANARY not in s for s in shown)
    assert secret.get() == CANARY


def test_key_is_not_in_the_provider_repr_or_vars() -> None:
    llm = GeminiLike(api_key=CANARY, base_url="https://example.test/v1")
    assert CANARY not in repr(llm)
    assert CANARY not in str(vars(llm))
    assert "https://example.test/v1" in repr(llm)


def test_key_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        llm = GeminiLike(api_key=CANARY)
        logging.getLogger("test").info("made %r with %s", llm, llm.api_key)
    assert caplog.records
    assert CANARY not in caplog.text


def test_found_key_is_registered_with_the_log_redactor() -> None:
    resolve_api_key("sk-explicit-registered-12345", [], provider="p")
    assert mask("the key sk-explicit-registered-12345 leaked") == "the key *** leaked"

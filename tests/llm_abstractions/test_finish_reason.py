"""Every provider's finish (stop) reason in one vocabulary: ``finish_reason_of``."""

from __future__ import annotations

import enum

import pytest

from coditect_core.llm_abstractions.datatypes import FinishReason, finish_reason_of


class _GeminiLike(enum.StrEnum):  # google-genai's FinishReason: a str enum like this
    MAX_TOKENS = "MAX_TOKENS"
    STOP = "STOP"


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("stop", "stop"),  # openai, llama.cpp
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("end_turn", "stop"),  # anthropic
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("MAX_TOKENS", "length"),  # gemini
        ("STOP", "stop"),
        ("SAFETY", "content_filter"),
        (_GeminiLike.MAX_TOKENS, "length"),
        (_GeminiLike.STOP, "stop"),
        ("pause_turn", "unknown"),
        ("something new", "unknown"),
        (None, None),
    ],
)
def test_one_vocabulary(raw: object, word: str | None) -> None:
    assert finish_reason_of(raw) == word
    if word is not None:
        assert isinstance(finish_reason_of(raw), FinishReason)

"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stub_server import StubServer


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    """A fresh loopback stub of the OpenAI, Anthropic and Gemini APIs (see tests/stub_server.py)."""
    with StubServer() as server:
        yield server

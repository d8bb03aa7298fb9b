"""Shared pytest fixtures."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stub_server import StubServer


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    """A fresh loopback stub of the OpenAI, Anthropic and Gemini APIs (support/stub_server.py)."""
    with StubServer() as server:
        yield server


@pytest.fixture
def write_program(tmp_path: Path) -> Callable[[str, str], list[str]]:
    """Write a Python program into tmp_path; return the argv that runs it."""

    def write(name: str, source: str) -> list[str]:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return [sys.executable, str(path)]

    return write

"""Fixtures for the orchestration tests: small real programs written on demand."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_program(tmp_path: Path) -> Callable[[str, str], list[str]]:
    """Write a Python program into tmp_path; return the argv that runs it."""

    def write(name: str, source: str) -> list[str]:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return [sys.executable, str(path)]

    return write

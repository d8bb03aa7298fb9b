"""The public surface of coditect_core.orchestration, and that importing it stays SDK-free."""

from __future__ import annotations

import subprocess
import sys

import coditect_core.orchestration as orchestration


def test_every_public_name_resolves() -> None:
    assert sorted(orchestration.__all__) == orchestration.__all__
    for name in orchestration.__all__:
        assert getattr(orchestration, name) is not None


def test_import_pulls_in_no_provider_sdk() -> None:
    code = (
        "import sys, coditect_core.orchestration, coditect_core.llm_abstractions.command\n"
        "heavy = [m for m in ('openai', 'anthropic', 'google.genai', 'llama_cpp', 'ray')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

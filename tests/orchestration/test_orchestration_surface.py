"""The public surface of coditect_core.orchestration, and that importing it stays SDK-free."""

from __future__ import annotations

import subprocess
import sys

import coditect_core.orchestration as orchestration


def test_every_public_name_is_defined_in_the_package_and_exported_where_it_is_defined() -> None:
    names = orchestration.__all__
    assert sorted(names) == names
    assert len(set(names)) == len(names)
    for name in names:
        obj = getattr(orchestration, name)
        home = sys.modules[obj.__module__]
        # A class or function of one of the package's modules, under its own name (not an
        # alias, not something re-exported from elsewhere), which that module exports too.
        assert home.__name__.startswith(f"{orchestration.__name__}."), (name, home.__name__)
        assert obj.__name__ == name, (name, obj.__name__)
        assert name in home.__all__, (name, home.__name__)
        assert getattr(home, name) is obj, (name, home.__name__)


def test_import_pulls_in_no_provider_sdk() -> None:
    code = (
        "import sys, coditect_core.orchestration, coditect_core.llm_abstractions.command\n"
        "heavy = [m for m in ('openai', 'anthropic', 'google.genai', 'llama_cpp', 'ray')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

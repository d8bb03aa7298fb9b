"""The public surface is what ``__all__`` says, and importing it costs no SDK."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import coditect_core

PACKAGES = sorted(
    [coditect_core.__name__]
    + [
        info.name
        for info in pkgutil.walk_packages(coditect_core.__path__, prefix="coditect_core.")
        if info.ispkg
    ]
)
CORE_MODULES = [
    "coditect_core.errors",
    "coditect_core.llm_abstractions.base_llm",
    "coditect_core.llm_abstractions.keys",
    "coditect_core.llm_abstractions.messages",
    "coditect_core.llm_abstractions.registry",
    "coditect_core.llm_abstractions.retry",
    "coditect_core.llm_abstractions.testing",
]
SDKS = ["openai", "anthropic", "google.genai", "llama_cpp", "ray"]


def _home(obj: object) -> str:
    """The module an object belongs to: where a class or function is defined, else its type's."""
    if isinstance(obj, type) or callable(obj):
        return getattr(obj, "__module__", None) or ""
    return type(obj).__module__


def _own_public_names(module: types.ModuleType, home_prefix: str) -> set[str]:
    """Public names bound in ``module`` to objects of coditect-core under ``home_prefix``.

    Submodules and helpers imported from elsewhere (``Any``, ``TYPE_CHECKING``, ``annotations``)
    do not count.
    """
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and _home(obj).startswith(home_prefix)
    }


def test_packages_are_found() -> None:
    assert "coditect_core" in PACKAGES
    assert "coditect_core.llm_abstractions" in PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all_is_exactly_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
        obj = getattr(package, attr)  # every name resolves (lazy ones too): AttributeError
        if isinstance(obj, type) or inspect.isfunction(obj):
            # a class or function of coditect-core, under its own name, and the very object
            # the module that defines it holds (not a stale copy, not an alias)
            assert obj.__module__.startswith("coditect_core."), (attr, obj.__module__)
            assert obj.__name__ == attr, (attr, obj.__name__)
            assert getattr(importlib.import_module(obj.__module__), attr) is obj, attr
    assert _own_public_names(package, "coditect_core") <= set(exported)


@pytest.mark.parametrize("name", CORE_MODULES)
def test_core_module_all_is_exactly_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
        assert hasattr(module, attr), attr
    defined_here = {
        n
        for n in _own_public_names(module, name)
        if isinstance(getattr(module, n), type) or callable(getattr(module, n))
    }
    assert defined_here <= set(exported)


def test_llm_abstractions_exports_the_contract() -> None:
    from coditect_core import llm_abstractions

    for name in (
        "BaseLlm",
        "LlmResponse",
        "Usage",
        "Claude",
        "Gpt",
        "Gemini",
        "FakeLlm",
        "RetryPolicy",
        "create_llm",
        "LlmError",
        "LlmRateLimitError",
    ):
        assert name in llm_abstractions.__all__
        assert name in dir(llm_abstractions)


def test_unknown_attribute_is_an_attribute_error() -> None:
    from coditect_core import llm_abstractions

    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = llm_abstractions.NoSuchThing


@pytest.mark.parametrize(
    "statement",
    [
        "import coditect_core",
        "import coditect_core.llm_abstractions",
        "from coditect_core.llm_abstractions import BaseLlm, FakeLlm, create_llm, get_llm_class",
    ],
)
def test_import_leaves_the_sdks_out(statement: str) -> None:
    report = f"print(json.dumps([m for m in {SDKS!r} if m in sys.modules]))"
    code = f"{statement}\nimport json, sys\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []

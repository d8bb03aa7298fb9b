"""The provider registry: lazy built-ins, entry-point plugins, refusals, and ``create_llm``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect_core.errors import LlmConfigurationError
from coditect_core.llm_abstractions import BaseLlm, FakeLlm, registry
from coditect_core.llm_abstractions.registry import (
    ENTRY_POINT_GROUP,
    available_llms,
    create_llm,
    get_llm_class,
    provider_for_model,
    register_llm,
    unregister_llm,
)

PLUGIN_MODULE = "coditect_test_plugin_3f9a"

PLUGIN_SOURCE = """
from coditect_core.llm_abstractions import BaseLlm, LlmResponse


class PluginLlm(BaseLlm):
    provider = "test-plugin"
    default_model = "plugin-model"

    async def _generate(self, client, messages, params):
        return LlmResponse(text="from the plugin", model=params.model)


class NotAnLlm:
    pass
"""

ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
test-plugin = {PLUGIN_MODULE}:PluginLlm
test-not-an-llm = {PLUGIN_MODULE}:NotAnLlm
test-missing = {PLUGIN_MODULE}_absent:Nothing
fake = {PLUGIN_MODULE}:PluginLlm
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the built-ins, with plugins not yet loaded."""
    monkeypatch.setattr(registry, "_registry", dict(registry._BUILTINS))
    monkeypatch.setattr(registry, "_plugins_loaded", False)


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real (throwaway) installed distribution declaring providers, on ``sys.path``."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    dist_info = tmp_path / "coditect_test_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: coditect-test-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop(PLUGIN_MODULE, None)


def test_builtins_resolve_lazily_in_a_fresh_interpreter() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from coditect_core.llm_abstractions import BaseLlm, registry
        modules = {t.partition(":")[0] for t in registry._BUILTINS.values()}
        report = {"imported_before_lookup": sorted(m for m in modules if m in sys.modules)}
        for name, target in sorted(registry._BUILTINS.items()):
            cls = registry.get_llm_class(name)
            report[name] = {
                "module_imported": target.partition(":")[0] in sys.modules,
                "is_base_llm": issubclass(cls, BaseLlm),
                "found": f"{cls.__module__}:{cls.__qualname__}",
                "target": target,
            }
        sdks = ["openai", "anthropic", "google.genai", "llama_cpp", "ray"]
        report["sdks_imported"] = [m for m in sdks if m in sys.modules]
        print(json.dumps(report))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # Only FakeLlm's module comes with the package; every provider module waits for a lookup.
    assert report.pop("imported_before_lookup") == ["coditect_core.llm_abstractions.testing"]
    assert report.pop("sdks_imported") == []  # looking a class up imports no SDK
    assert set(report) == set(registry._BUILTINS)
    for name, row in report.items():
        assert row["module_imported"], name
        assert row["is_base_llm"], name
        assert row["found"] == row["target"], name


def test_aliases_name_the_same_class() -> None:
    assert get_llm_class("fake") is FakeLlm
    assert registry._BUILTINS["gpt"] == registry._BUILTINS["openai-gpt"]
    assert registry._BUILTINS["claude"] == registry._BUILTINS["anthropic-claude"]
    assert registry._BUILTINS["gemini"] == registry._BUILTINS["google-gemini"]


def test_agent_type_values_are_registered() -> None:
    names = set(available_llms())
    for agent_type in (
        "anthropic-claude",
        "openai-gpt",
        "google-gemini",
        "meta-llama",
        "openai-compatible",
        "local",
    ):
        assert agent_type in names


def test_entry_point_plugin_is_found(plugin_dist: Path) -> None:
    cls = get_llm_class("test-plugin")
    assert issubclass(cls, BaseLlm)
    assert cls.__module__ == PLUGIN_MODULE
    assert "test-plugin" in available_llms()
    llm = create_llm("test-plugin")
    assert llm.generate_content("hi") == "from the plugin"


def test_plugin_that_is_not_a_base_llm_is_refused(plugin_dist: Path) -> None:
    with pytest.raises(LlmConfigurationError) as info:
        get_llm_class("test-not-an-llm")
    text = str(info.value)
    assert "test-not-an-llm" in text
    assert f"{PLUGIN_MODULE}:NotAnLlm" in text
    assert "not a subclass of coditect_core.llm_abstractions.BaseLlm" in text


def test_plugin_that_cannot_be_imported_is_a_clear_error(plugin_dist: Path) -> None:
    with pytest.raises(LlmConfigurationError, match=f"{PLUGIN_MODULE}_absent:Nothing"):
        get_llm_class("test-missing")


def test_plugin_cannot_shadow_a_builtin(
    plugin_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        names = available_llms()  # loads the plugins
    assert "fake" in names
    assert get_llm_class("fake") is FakeLlm
    assert "ignoring plugin fake" in caplog.text


def test_unknown_name_lists_the_known_ones(plugin_dist: Path) -> None:
    with pytest.raises(LlmConfigurationError) as info:
        get_llm_class("no-such-provider")
    text = str(info.value)
    assert "unknown provider 'no-such-provider'" in text
    for known in ("anthropic-claude", "openai-gpt", "google-gemini", "fake", "test-plugin"):
        assert known in text


def test_register_a_class_at_run_time() -> None:
    class Mine(FakeLlm):
        provider = "mine"

    register_llm("mine", Mine)
    assert get_llm_class("mine") is Mine
    register_llm("mine", Mine)  # the same again is fine
    with pytest.raises(LlmConfigurationError, match="already registered"):
        register_llm("mine", FakeLlm)
    register_llm("mine", FakeLlm, replace=True)
    assert get_llm_class("mine") is FakeLlm
    unregister_llm("mine")
    with pytest.raises(LlmConfigurationError, match="unknown provider"):
        get_llm_class("mine")


def test_register_by_dotted_path_imports_on_first_use() -> None:
    register_llm("fake-by-path", "coditect_core.llm_abstractions.testing:FakeLlm")
    assert registry._registry["fake-by-path"] == "coditect_core.llm_abstractions.testing:FakeLlm"
    assert get_llm_class("fake-by-path") is FakeLlm
    assert registry._registry["fake-by-path"] is FakeLlm  # resolved once, kept


@pytest.mark.parametrize("thing", [object, dict, "not a class", len], ids=repr)
def test_register_refuses_what_is_not_a_base_llm(thing: object) -> None:
    if isinstance(thing, str):
        register_llm("odd", "builtins:len")
        with pytest.raises(LlmConfigurationError, match="not a subclass"):
            get_llm_class("odd")
    else:
        with pytest.raises(LlmConfigurationError, match="not a subclass"):
            register_llm("odd", thing)  # type: ignore[arg-type]


def test_unregistering_a_builtin_restores_it() -> None:
    register_llm("fake", "builtins:len", replace=True)
    unregister_llm("fake")
    assert get_llm_class("fake") is FakeLlm


def test_create_llm_passes_settings() -> None:
    llm = create_llm("fake", model="fake-xl", temperature=0.2, max_tokens=5)
    assert isinstance(llm, FakeLlm)
    assert (llm.model, llm.temperature, llm.max_tokens) == ("fake-xl", 0.2, 5)


def test_create_llm_of_an_unknown_name_fails_before_anything_else() -> None:
    with pytest.raises(LlmConfigurationError, match="unknown provider 'nope'"):
        create_llm("nope", model="x")


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai-gpt"),
        ("chatgpt-4o-latest", "openai-gpt"),
        ("o1", "openai-gpt"),
        ("o3-mini", "openai-gpt"),
        ("o4-mini-2025-04-16", "openai-gpt"),
        ("claude-sonnet-4-5", "anthropic-claude"),
        ("gemini-2.5-flash", "google-gemini"),
        ("/models/SmolLM2.Q4_1.GGUF", "local"),
    ],
)
def test_provider_for_model_reads_the_name(model: str, provider: str) -> None:
    assert provider_for_model(model) == provider


@pytest.mark.parametrize("model", ["omni-moderation", "llama3.2", "o", "gpt4", "mistral-large"])
def test_provider_for_model_refuses_a_name_it_cannot_read(model: str) -> None:
    with pytest.raises(LlmConfigurationError, match="cannot tell which provider") as caught:
        provider_for_model(model)
    assert "claude-* (anthropic-claude)" in str(caught.value)

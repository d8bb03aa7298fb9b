"""Provider name -> ``BaseLlm`` class: the built-ins, plus plugins from other packages.

A package adds a provider by declaring its class under the entry-point group
``coditect_core.llms`` (``myllm = "my_package.module:MyLlm"``), or at run time with
:func:`register_llm`. A plugin never replaces a built-in or a run-time registration of the same
name (it is ignored, with a warning), so a name means the same class whatever was looked up
first. Built-ins are registered by dotted path, so looking one up imports only its module, and
no module imports its SDK until a call needs it. Picking a provider is a lookup, never an
if/elif ladder.
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any

from ..errors import LlmConfigurationError
from .base_llm import BaseLlm

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_llms",
    "create_llm",
    "get_llm_class",
    "provider_for_model",
    "register_llm",
    "unregister_llm",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "coditect_core.llms"

_PKG = "coditect_core.llm_abstractions"
# The canonical names are the AgentType values; the short ones are aliases for people typing.
_BUILTINS: dict[str, str] = {
    "anthropic-claude": f"{_PKG}.claude:Claude",
    "claude": f"{_PKG}.claude:Claude",
    "anthropic": f"{_PKG}.claude:Claude",
    "openai-gpt": f"{_PKG}.gpt:Gpt",
    "gpt": f"{_PKG}.gpt:Gpt",
    "openai": f"{_PKG}.gpt:Gpt",
    "openai-compatible": f"{_PKG}.gpt:OpenAICompatible",
    "google-gemini": f"{_PKG}.gemini:Gemini",
    "gemini": f"{_PKG}.gemini:Gemini",
    "local": f"{_PKG}.local:LocalLlm",
    "meta-llama": f"{_PKG}.local:LocalLlm",
    "command": f"{_PKG}.command:CommandLlm",
    "fake": f"{_PKG}.testing:FakeLlm",
}

# A model's name -> the provider that serves it (``provider_for_model``): a lookup, in order.
_MODEL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r".*\.gguf", re.IGNORECASE), "local"),
    (re.compile(r"(gpt-|chatgpt-|o[1-9]($|-)).*"), "openai-gpt"),
    (re.compile(r"claude-.*"), "anthropic-claude"),
    (re.compile(r"gemini-.*"), "google-gemini"),
)
_MODEL_HINTS = "gpt-*, chatgpt-*, o1, o3, o4... (openai-gpt); claude-* (anthropic-claude); "
_MODEL_HINTS += "gemini-* (google-gemini); a .gguf file (local)"

_registry: dict[str, type[BaseLlm] | str] = dict(_BUILTINS)
_plugins_loaded = False


def _check_class(name: str, obj: Any, target: str | None = None) -> type[BaseLlm]:
    if not (isinstance(obj, type) and issubclass(obj, BaseLlm)):
        source = f" ({target})" if target else ""
        raise LlmConfigurationError(
            f"provider {name!r}{source} is {obj!r}, which is not a subclass of "
            f"coditect_core.llm_abstractions.BaseLlm"
        )
    return obj


def register_llm(name: str, cls: type[BaseLlm] | str, *, replace: bool = False) -> None:
    """Register ``cls`` (a class, or ``"module:Class"`` imported on first use) under ``name``."""
    if not isinstance(cls, str):
        _check_class(name, cls)
    if name in _registry and not replace and _registry[name] != cls:
        raise LlmConfigurationError(
            f"provider {name!r} is already registered; pass replace=True to override it"
        )
    _registry[name] = cls


def unregister_llm(name: str) -> None:
    """Remove ``name`` (a built-in comes back on the next :func:`get_llm_class`)."""
    _registry.pop(name, None)
    if name in _BUILTINS:
        _registry[name] = _BUILTINS[name]


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points  # costs ~20 ms: only when a lookup misses

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _registry:
            _registry[ep.name] = ep.value
        elif _registry[ep.name] != ep.value:
            logger.warning(
                "ignoring plugin %s = %s: the name is already registered", ep.name, ep.value
            )


def _resolve(name: str, target: type[BaseLlm] | str) -> type[BaseLlm]:
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise LlmConfigurationError(
            f"provider {name!r} points at {target!r}, which cannot be imported: {error}"
        ) from error
    cls = _check_class(name, obj, target)
    _registry[name] = cls
    return cls


def get_llm_class(name: str) -> type[BaseLlm]:
    """The class registered as ``name``; plugins are loaded on the first miss."""
    if name not in _registry:
        _load_plugins()
    if name not in _registry:
        known = ", ".join(sorted(_registry))
        raise LlmConfigurationError(f"unknown provider {name!r}; known providers: {known}")
    return _resolve(name, _registry[name])


def available_llms() -> list[str]:
    """Every registered provider name, plugins included, sorted."""
    _load_plugins()
    return sorted(_registry)


def provider_for_model(model: str) -> str:
    """The built-in provider that serves ``model``, told by its name (``gpt-4o-mini``:
    ``openai-gpt``); :class:`LlmConfigurationError` listing the names it knows otherwise."""
    for pattern, provider in _MODEL_PATTERNS:
        if pattern.fullmatch(model):
            return provider
    raise LlmConfigurationError(
        f"cannot tell which provider serves model {model!r} from its name; "
        f"known names: {_MODEL_HINTS}"
    )


def create_llm(name: str, **settings: Any) -> BaseLlm:
    """Instantiate provider ``name`` with ``settings`` (``model``, ``api_key``, ``base_url``...)."""
    return get_llm_class(name)(**settings)

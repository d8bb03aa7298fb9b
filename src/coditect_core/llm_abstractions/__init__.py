"""Floor 1: talking to models; knows nothing of tasks. One contract (:class:`BaseLlm`), one module
per backend, and the request pipeline as wrappers (:class:`WrapperLlm`: :class:`LimitedLlm`,
:class:`PricedLlm`) with one retry loop (:mod:`.retry`) and one instrumentation hook
(:mod:`.instrumentation`).

Provider classes are imported on first access, and none imports its SDK until it is used, so
``import coditect_core.llm_abstractions`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import (
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmConnectionError,
    LlmContentFilterError,
    LlmContextLengthError,
    LlmError,
    LlmNotInstalledError,
    LlmOutputValidationError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
    LlmWorkerLostError,
)
from ..secrets import Secret
from .base_llm import BaseLlm, CallParams, LlmResponse, LlmStream, StreamState, Usage
from .keys import resolve_api_key
from .limits import AgentGate, AgentLimits, LimitedLlm
from .messages import Message, Messages, normalize_messages, tool_message
from .output import OutputMode, OutputSchema
from .pricing import Price, PriceBook, PricedLlm
from .registry import available_llms, create_llm, get_llm_class, register_llm, unregister_llm
from .retry import NO_RETRY, RetryPolicy
from .spec import LlmSpec
from .testing import FakeLlm
from .tool_types import Tool, ToolCall, ToolChoice
from .wrapper import WrapperLlm

if TYPE_CHECKING:
    from .claude import Claude
    from .command import CommandLlm
    from .gemini import Gemini
    from .gpt import Gpt, OpenAICompatible
    from .local import LocalLlm

__all__ = [
    "NO_RETRY",
    "AgentGate",
    "AgentLimits",
    "BaseLlm",
    "CallParams",
    "Claude",
    "CommandLlm",
    "FakeLlm",
    "Gemini",
    "Gpt",
    "LimitedLlm",
    "LlmAuthenticationError",
    "LlmConfigurationError",
    "LlmConnectionError",
    "LlmContentFilterError",
    "LlmContextLengthError",
    "LlmError",
    "LlmNotInstalledError",
    "LlmOutputValidationError",
    "LlmPermissionError",
    "LlmRateLimitError",
    "LlmRequestError",
    "LlmResponse",
    "LlmResponseError",
    "LlmServerError",
    "LlmSpec",
    "LlmStream",
    "LlmTimeoutError",
    "LlmWorkerLostError",
    "LocalLlm",
    "Message",
    "Messages",
    "OpenAICompatible",
    "OutputMode",
    "OutputSchema",
    "Price",
    "PriceBook",
    "PricedLlm",
    "RetryPolicy",
    "Secret",
    "StreamState",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "Usage",
    "WrapperLlm",
    "available_llms",
    "create_llm",
    "get_llm_class",
    "normalize_messages",
    "register_llm",
    "resolve_api_key",
    "tool_message",
    "unregister_llm",
]

_LAZY = {
    "Claude": "claude",
    "CommandLlm": "command",
    "Gemini": "gemini",
    "Gpt": "gpt",
    "OpenAICompatible": "gpt",
    "LocalLlm": "local",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

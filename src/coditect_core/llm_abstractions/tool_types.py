"""Tool calling's values: :class:`Tool` (what a model may call), :class:`ToolCall` (what it asked
for) and :data:`ToolChoice`. Knows no tool's code: running a tool is the caller's business
(:mod:`coditect_core.tools`); a provider only maps these to and from its wire format.

A tool is declared by hand or from a typed Python function::

    def read_file(path: str, start: int = 1) -> str:
        \"\"\"Read a file of the project.\"\"\"

    tool = Tool.from_function(read_file)   # name, description, JSON Schema of the parameters

Messages carry them (:mod:`.messages`): an assistant message's ``tool_calls``, and a ``tool``
message answering one call by its id.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from ..errors import LlmRequestError

__all__ = [
    "TOOL_NAME_PATTERN",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "arguments_model",
    "parse_tool_arguments",
]

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A name every provider accepts (OpenAI's rule is the strictest)."""

ToolChoice: TypeAlias = Literal["auto", "required", "none"] | str
"""``auto`` (the model decides), ``required`` (it must call one), ``none`` (it may not), or a
tool's name (it must call that one)."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool a model may call: its name, what it does, and the JSON Schema of its arguments.

    ``parameters`` is a JSON Schema of type ``object``; ``strict`` asks providers that support it
    (OpenAI) to hold the model to the schema exactly.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TOOL_NAME_PATTERN.match(self.name):
            raise LlmRequestError(
                f"tool name {self.name!r} is not valid: use 1 to 64 letters, digits, _ or -"
            )
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise LlmRequestError(
                f"tool {self.name!r}: parameters must be a JSON Schema with type 'object'"
            )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
    ) -> Tool:
        """A tool declared by ``function``'s signature (types through pydantic) and docstring.

        The name defaults to the function's, the description to its docstring. Every parameter
        needs a type hint; ``*args``, ``**kwargs`` and positional-only parameters are refused.
        """
        title: str = name or str(getattr(function, "__name__", "tool"))
        schema = arguments_model(function, title).model_json_schema()
        schema.pop("title", None)
        schema.pop("additionalProperties", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        schema.setdefault("properties", {})
        doc = description if description is not None else inspect.getdoc(function) or ""
        return cls(name=title, description=doc.strip(), parameters=schema, strict=strict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "strict": self.strict,
        }


def arguments_model(function: Callable[..., Any], name: str | None = None) -> type[Any]:
    """A pydantic model of ``function``'s parameters (unknown arguments refused): what
    :meth:`Tool.from_function` declares and what a caller validates the model's arguments with.
    Every parameter needs a type hint; ``*args``, ``**kwargs`` and positional-only parameters
    are refused."""
    from pydantic import ConfigDict, create_model  # lazy: only tools from functions need it

    title = name or getattr(function, "__name__", "tool")
    hints = _type_hints(function)
    fields: dict[str, Any] = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise LlmRequestError(
                f"tool {title!r}: parameter {param.name!r} must be a plain or keyword "
                "parameter (no *args, **kwargs or positional-only)"
            )
        if param.name not in hints:
            raise LlmRequestError(f"tool {title!r}: parameter {param.name!r} has no type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model: type[Any] = create_model(
        f"{title}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(function)
    except Exception as error:  # an unresolvable forward reference
        raise LlmRequestError(
            f"tool {getattr(function, '__name__', function)!r}: its type hints cannot be "
            f"resolved ({error})"
        ) from None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call a model asked for: the provider's id of it, the tool's name, the arguments.

    ``arguments`` is the decoded JSON object. When the model sent text that is not a JSON object,
    ``arguments`` is empty and ``invalid_arguments`` holds that text, so the caller can answer the
    call with an error the model can react to. ``signature`` is an opaque token the provider gave
    with the call and wants back with it (Gemini's thought signature, base64): keep the call as it
    came when it goes back in the conversation.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    invalid_arguments: str | None = None
    signature: str | None = None

    @classmethod
    def from_json(cls, id: str, name: str, text: str | None) -> ToolCall:
        """A call whose arguments came as JSON text (OpenAI's wire format)."""
        arguments, invalid = parse_tool_arguments(text)
        return cls(id=id, name=name, arguments=arguments, invalid_arguments=invalid)

    def arguments_json(self) -> str:
        """The arguments as JSON text (the raw text when they were not valid)."""
        if self.invalid_arguments is not None:
            return self.invalid_arguments
        return json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``invalid_arguments`` and ``signature`` only when set)."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": dict(self.arguments)}
        if self.invalid_arguments is not None:
            data["invalid_arguments"] = self.invalid_arguments
        if self.signature is not None:
            data["signature"] = self.signature
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """The inverse of :meth:`to_dict` (also takes a JSON string of ``arguments``)."""
        arguments = data.get("arguments", {})
        signature = data.get("signature")
        if isinstance(arguments, str):
            call = cls.from_json(str(data["id"]), str(data["name"]), arguments)
            if signature is not None:
                call = replace(call, signature=str(signature))
            return call
        if not isinstance(arguments, Mapping):
            raise LlmRequestError(
                f"tool call {data.get('id')!r}: arguments must be a mapping or JSON text, "
                f"not {type(arguments).__name__}"
            )
        invalid = data.get("invalid_arguments")
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            arguments=dict(arguments),
            invalid_arguments=str(invalid) if invalid is not None else None,
            signature=str(signature) if signature is not None else None,
        )


def parse_tool_arguments(text: str | None) -> tuple[dict[str, Any], str | None]:
    """``(arguments, None)`` for JSON text of an object (empty text: no arguments), else
    ``({}, text)``: the model's text kept for the error it should be told about."""
    if text is None or not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, text
    if not isinstance(value, dict):
        return {}, text
    return value, None

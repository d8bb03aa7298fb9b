"""Typed outputs: a reply parsed and validated against a schema, re-asked until it fits.

``generate_async(messages, output_schema=S)`` (:meth:`.base_llm.BaseLlm.generate_async`) hands
the call to :func:`generate_typed`. ``S`` is a JSON Schema (a dict) or a pydantic model class
(:class:`OutputSchema`). Three ways to get JSON out of a model (:class:`OutputMode`):

* ``native``: the provider's own structured output (OpenAI's ``response_format`` json_schema,
  Anthropic's ``output_format``, Gemini's ``responseJsonSchema``, llama.cpp's JSON-Schema
  grammar); the provider maps :attr:`.datatypes.CallParams.output` to its wire field;
* ``tool``: one tool whose parameters are the schema, its call forced; the value is its arguments;
* ``prompted``: the schema in the system prompt; the JSON read from the reply (```` ```json ````
  fences and text around one JSON value tolerated).

``auto`` picks the first of the provider's :meth:`~.base_llm.BaseLlm.output_modes`. A reply that
does not parse or validate is re-asked: the conversation grows by the reply and a message listing
the errors (a tool result for a tool call), up to ``output_retries`` times. Every try is a whole
call of the LLM (its requests go through its wrappers: limited, priced, recorded, journaled),
and before a re-ask :meth:`~.base_llm.BaseLlm.output_invalid` is awaited (the orchestrator ends
the attempt there). After the bound: :class:`~coditect_core.errors.LlmOutputValidationError`
with the last errors and the last reply. The response says which mode was used
(``output_mode``) and how many tries it took (``output_tries``).

Validation: a JSON Schema with ``jsonschema`` (the schema itself checked first: a schema that is
not valid is refused before anything is sent); a model class with pydantic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..errors import LlmConfigurationError, LlmOutputValidationError, LlmRequestError
from .messages import Message, normalize_messages, tool_message
from .tool_types import Tool, ToolCall

if TYPE_CHECKING:
    from .base_llm import BaseLlm
    from .datatypes import LlmResponse

__all__ = [
    "DEFAULT_OUTPUT_RETRIES",
    "OutputMode",
    "OutputSchema",
    "check_json_schema",
    "extract_json",
    "generate_typed",
]

DEFAULT_OUTPUT_RETRIES = 2
"""How many times an invalid reply is re-asked by default (so at most 3 tries)."""
OUTPUT_TOOL_NAME = "final_result"
"""The tool whose forced call carries the value in ``tool`` mode."""
_MAX_ERRORS = 20  # errors listed back to the model (and in the final error)


class OutputMode(StrEnum):
    """How a typed output is asked for (see the module's docstring)."""

    AUTO = "auto"
    NATIVE = "native"
    TOOL = "tool"
    PROMPTED = "prompted"

    @classmethod
    def of(cls, value: object) -> OutputMode:
        """``value`` (a member or its name) as a member; :class:`LlmRequestError` if unknown."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise LlmRequestError(
                f"unknown output_mode {value!r}: use one of {', '.join(m.value for m in cls)}"
            ) from None


def check_json_schema(schema: object) -> list[str]:
    """Why ``schema`` is not a valid JSON Schema (empty: it is). Its draft is its ``$schema``,
    else 2020-12."""
    if not isinstance(schema, Mapping):
        return [f"a JSON Schema is an object (a mapping), not {type(schema).__name__}"]
    from jsonschema import exceptions, validators  # lazy: only typed outputs need it

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except exceptions.SchemaError as error:
        where = _path(error.absolute_path)
        return [f"{where}: {error.message}" if where != "$" else error.message]
    return []


def _path(parts: Sequence[object]) -> str:
    """A JSON path (``$.a[0].b``) of ``parts``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """What a typed output must be: a JSON Schema, and the pydantic model it came from (if any).

    Build it with :meth:`of`. ``name`` is what the providers call it (OpenAI's json_schema name,
    the tool's name is :data:`OUTPUT_TOOL_NAME`).
    """

    schema: Mapping[str, Any]
    name: str = "output"
    model: type[Any] | None = None

    @classmethod
    def of(cls, spec: object) -> OutputSchema:
        """A JSON Schema dict, a pydantic model class, or an :class:`OutputSchema`, checked.

        Raises :class:`LlmRequestError` for anything else, or a dict that is not a valid JSON
        Schema (the reasons in the message).
        """
        if isinstance(spec, OutputSchema):
            return spec
        model_json_schema = getattr(spec, "model_json_schema", None)
        if isinstance(spec, type) and callable(model_json_schema):
            name = re.sub(r"[^A-Za-z0-9_-]", "_", spec.__name__)[:64] or "output"
            return cls(schema=model_json_schema(), name=name, model=spec)
        if isinstance(spec, Mapping):
            problems = check_json_schema(spec)
            if problems:
                raise LlmRequestError(
                    "output_schema is not a valid JSON Schema: " + "; ".join(problems)
                )
            title = spec.get("title")
            name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) else ""
            return cls(schema=dict(spec), name=name or "output")
        raise LlmRequestError(
            "output_schema must be a JSON Schema (a dict) or a pydantic model class, "
            f"not {type(spec).__name__}"
        )

    def wire(self) -> dict[str, Any]:
        """What a provider gets in :attr:`.datatypes.CallParams.output`: plain JSON data."""
        return {"name": self.name, "schema": dict(self.schema)}

    def validate(self, data: Any) -> tuple[Any, list[str]]:
        """``(value, [])`` if ``data`` fits (a model instance for a model class), else
        ``(None, errors)``, each error naming where in the data it is."""
        if self.model is not None:
            from pydantic import ValidationError

            try:
                return self.model.model_validate(data), []
            except ValidationError as error:
                return None, [
                    f"{_path(list(e['loc']))}: {e['msg']}" for e in error.errors()[:_MAX_ERRORS]
                ]
        from jsonschema import validators

        cls = validators.validator_for(self.schema, default=validators.Draft202012Validator)
        found = sorted(cls(self.schema).iter_errors(data), key=lambda e: list(e.absolute_path))
        if not found:
            return data, []
        return None, [f"{_path(e.absolute_path)}: {e.message}" for e in found[:_MAX_ERRORS]]

    def parse(self, text: str) -> tuple[Any, list[str]]:
        """The JSON in ``text`` validated (:meth:`validate`), or why it is not there."""
        try:
            data = extract_json(text)
        except ValueError as error:
            return None, [str(error)]
        return self.validate(data)

    def tool(self) -> Tool:
        """The tool whose arguments are the value (``tool`` mode)."""
        schema = dict(self.schema)
        if schema.get("type") != "object":  # tools take an object: wrap anything else
            schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
        return Tool(
            OUTPUT_TOOL_NAME,
            "Give the final result. Call this exactly once, with the whole result as arguments.",
            schema,
        )

    def from_tool(self, call: ToolCall) -> tuple[Any, list[str]]:
        """The value a call of :meth:`tool` carries, validated."""
        if call.invalid_arguments is not None:
            return None, [f"the arguments are not a JSON object: {call.invalid_arguments[:200]}"]
        data: Any = dict(call.arguments)
        if self.schema.get("type") != "object":
            data = data.get("value")
        return self.validate(data)

    def instructions(self) -> str:
        """The system prompt's part in ``prompted`` mode."""
        return (
            "Answer with one JSON value that matches this JSON Schema, and nothing else "
            "(no explanation, no Markdown):\n" + json.dumps(self.schema, ensure_ascii=False)
        )


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON value in a model's reply: the whole text, else a ```` ```json ```` fenced block,
    else the first ``{...}``/``[...]`` that parses. :class:`ValueError` saying why if none."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the reply is empty: expected JSON")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except ValueError:
            continue
        return value
    try:
        json.loads(stripped)
    except ValueError as error:
        raise ValueError(f"the reply is not JSON ({error})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _with_instructions(messages: list[Message], text: str) -> list[Message]:
    """``messages`` with ``text`` added to the system prompt (or as one, first)."""
    if messages and messages[0]["role"] == "system":
        first: Message = {"role": "system", "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _errors_text(errors: list[str]) -> str:
    listed = "\n".join(f"- {e}" for e in errors)
    return (
        "Your answer does not match the required JSON Schema. Errors:\n"
        f"{listed}\nAnswer again, fixing these errors."
    )


def _reply_text(response: LlmResponse) -> str:
    """The reply as the final error shows it (a tool call's arguments)."""
    if response.tool_calls:
        return response.tool_calls[0].arguments_json()
    return response.text


def _resolve_mode(llm: BaseLlm, mode: OutputMode) -> OutputMode:
    supported = llm.output_modes()
    if mode is OutputMode.AUTO:
        return supported[0] if supported else OutputMode.PROMPTED
    if mode not in supported:
        raise LlmConfigurationError(
            f"{type(llm).__name__} ({llm.provider}) cannot produce output_mode {mode.value!r}: "
            f"use one of {', '.join(m.value for m in supported)} (or auto)",
            provider=llm.provider,
        )
    return mode


async def generate_typed(
    llm: BaseLlm,
    messages: Any,
    output_schema: object,
    *,
    mode: object = OutputMode.AUTO,
    retries: int = DEFAULT_OUTPUT_RETRIES,
    **kwargs: Any,
) -> LlmResponse:
    """Call ``llm`` until its reply fits ``output_schema``; the response's ``value`` holds it.

    See the module's docstring. Refused before anything is sent (:class:`LlmRequestError`,
    :class:`LlmConfigurationError`): a schema that is not one, an unknown mode, a mode the
    provider lacks, a negative ``retries``, a stream, ``tools`` given as well.
    """
    spec = OutputSchema.of(output_schema)
    chosen = _resolve_mode(llm, OutputMode.of(mode))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise LlmRequestError(f"output_retries must be a whole number >= 0, not {retries!r}")
    if kwargs.get("tools") or kwargs.get("tool_choice") is not None:
        raise LlmRequestError("output_schema cannot be combined with tools or tool_choice")
    conversation = normalize_messages(messages, provider=llm.provider)
    options = dict(kwargs)
    if chosen is OutputMode.NATIVE:
        options["output"] = spec.wire()
    elif chosen is OutputMode.TOOL:
        tool = spec.tool()
        options["tools"], options["tool_choice"] = [tool], tool.name
    else:
        conversation = _with_instructions(conversation, spec.instructions())
    tries = 0
    while True:
        tries += 1
        response = await llm.generate_async(conversation, **options)
        call = next((c for c in response.tool_calls if c.name == OUTPUT_TOOL_NAME), None)
        if chosen is OutputMode.TOOL and call is not None:
            value, errors = spec.from_tool(call)
        elif chosen is OutputMode.TOOL and not response.text.strip():
            value, errors = None, [f"no call of the tool {OUTPUT_TOOL_NAME!r}"]
        else:  # (a model that answered in text despite the forced call: read the text)
            value, errors = spec.parse(response.text)
        if not errors:
            response.value, response.output_mode, response.output_tries = value, chosen, tries
            return response
        error = LlmOutputValidationError(
            f"the reply does not match the output schema after {tries} "
            f"{'try' if tries == 1 else 'tries'}: " + "; ".join(errors[:5]),
            errors=errors,
            reply=_reply_text(response),
            tries=tries,
            provider=llm.provider,
        )
        if tries > retries:
            raise error
        await llm.output_invalid(error, tries)
        conversation = [*conversation, *_reask(response, call, errors)]


def _reask(response: LlmResponse, call: ToolCall | None, errors: list[str]) -> list[Message]:
    """The reply, then the errors told back: a tool result answering every call it made (an
    error), or a user message."""
    if response.tool_calls:
        answers = [
            tool_message(c, _errors_text(errors) if c is call else "not run", is_error=True)
            for c in response.tool_calls
        ]
        assistant: Message = {
            "role": "assistant",
            "content": response.text,
            "tool_calls": list(response.tool_calls),
        }
        return [assistant, *answers]
    return [
        {"role": "assistant", "content": response.text},
        {"role": "user", "content": _errors_text(errors)},
    ]

"""Turn problems found in a project file into one :class:`ProjectFileError` a person can act on.

Each problem names the field path (``tasks[3].dependencies[0]``), the line, the task it is in,
and the bad value (never the value of a secret field: ``api_key``, or an option whose name says
key, token, secret or password). The first problem (by line) gives the error its ``line`` and
``field``; the others are listed after it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from ..errors import ProjectFileError
from ._yaml import FieldPath, LineMap, format_path
from .schema import model_at

__all__ = ["Problem", "from_validation_error", "plain_message", "raise_problems", "show_value"]

_SECRET_NAME = re.compile(r"key|token|secret|password|passwd|credential|auth", re.IGNORECASE)
_MAX_LISTED = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, at ``path``."""

    path: FieldPath
    message: str
    line: int | None = None


def is_secret_path(path: FieldPath) -> bool:
    """Whether the value at ``path`` may hold a secret and must never be shown."""
    if "api_key" in path:
        return True
    if len(path) >= 3 and path[0] == "agents" and "options" in path[2:]:
        return any(isinstance(part, str) and _SECRET_NAME.search(part) for part in path[3:])
    return False


def show_value(value: Any, path: FieldPath = ()) -> str:
    """A short, safe rendering of a bad value for an error message."""
    if is_secret_path(path):
        return "(hidden)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null (nothing)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, date):
        return f"{value.isoformat()} (a date)"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{text} (a number)"
    return text


_PREFIXES = ("Value error, ", "Assertion failed, ")


def plain_message(message: str) -> str:
    """A pydantic message in our words: without its kind ("Value error, ...") and saying
    "must" for "Input should" (``'x' is not one of 'a', 'b'``, ``must be a valid integer``)."""
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message.replace("Input should", "must").replace("Value should", "must")


def _quote_hint(value: Any, path: FieldPath) -> str:
    if is_secret_path(path):
        return ""
    if isinstance(value, bool):
        return "; YAML reads yes/no/on/off/true/false as a boolean: put the word in quotes"
    if isinstance(value, int | float | date):
        return f'; quote it to make it a string: "{value}"'
    return ""


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _describe(error: Mapping[str, Any], path: FieldPath) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return f"missing required field {path[-1]!r}"
    if kind == "extra_forbidden":
        name = str(path[-1])
        model = model_at(path[:-1])
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = "the top level" if len(path) == 1 else format_path(path[:-1])
        return f"unknown field {name!r} in {where}{hint}"
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {show_value(value, path)}"
        if kind == "string_type":
            message += _quote_hint(value, path)
        if kind == "list_type" and isinstance(value, str) and not is_secret_path(path):
            message += f"; write a list: [{value}]"
        return message
    if kind == "invalid-json-value":
        return (
            "expected text, a number, true/false, a list or a mapping, "
            f"got {show_value(value, path)}{_quote_hint(value, path)}"
        )
    if kind == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else plain_message(error["msg"])
    if kind == "literal_error":
        return (
            f"{error['msg'].replace('Input should be', 'must be')}, got {show_value(value, path)}"
        )
    if kind == "too_short" and isinstance(value, list | dict):
        count = error.get("ctx", {}).get("min_length", 1)
        return f"needs at least {count} entr{'y' if count == 1 else 'ies'}, got none"
    message = plain_message(error["msg"])
    return f"{message[0].lower()}{message[1:]}, got {show_value(value, path)}"


def _task_label(data: Any, path: FieldPath) -> str:
    if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
        tasks = data.get("tasks") if isinstance(data, dict) else None
        if isinstance(tasks, list) and 0 <= path[1] < len(tasks):
            task = tasks[path[1]]
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                return f" (task {task['id']!r})"
    return ""


def _path_of(loc: Sequence[Any], data: Any) -> FieldPath:
    """The field path of a pydantic location: its steps that exist in ``data``.

    Pydantic adds steps that are not fields: ``"[key]"`` after a bad mapping key, and union
    tags (``"dict"``, ``"list"``, ``"str"``) inside ``JsonValue``. Walking the data tells them
    apart; a missing field (the last step) is kept.
    """
    path: list[Hashable] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        in_dict = isinstance(node, dict) and isinstance(part, Hashable) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict:
            part = next(key for key in node if key == part)  # pydantic turns False into 0
            node = node[part]
        elif in_list:
            node = node[part]
        elif not (last and part != "[key]" and isinstance(node, dict)):
            continue  # not a field; a missing field (the last step) is kept
        path.append(part)
    return tuple(path)


def from_validation_error(error: ValidationError, data: Any, lines: LineMap) -> list[Problem]:
    """One :class:`Problem` per pydantic error, with its line and task."""
    problems = []
    for item in error.errors(include_url=False):
        path = _path_of(item["loc"], data)
        message = _describe(item, path) + _task_label(data, path)
        problems.append(Problem(path, message, lines.line(path)))
    return problems


def raise_problems(problems: Sequence[Problem], file: str) -> None:
    """Raise a :class:`ProjectFileError` for ``problems`` (first by line first), if any."""
    if not problems:
        return
    # A typo ("task:") explains a missing field ("tasks"): list what is there before what is not.
    ordered = sorted(
        problems,
        key=lambda p: (p.message.startswith("missing required"), p.line is None, p.line or 0),
    )
    first = ordered[0]
    field = format_path(first.path)
    message = f"{field}: {first.message}"
    rest = ordered[1:_MAX_LISTED]
    for problem in rest:
        where = f"{file}:{problem.line}" if problem.line is not None else file
        message += f"\n  {where}: {format_path(problem.path)}: {problem.message}"
    if len(ordered) > _MAX_LISTED:
        message += f"\n  ... and {len(ordered) - _MAX_LISTED} more problems"
    raise ProjectFileError(message, path=file, line=first.line, field=field)

"""``${VAR}`` references in agent settings: find them, check their syntax, expand them.

``${NAME}`` is the value of environment variable ``NAME``; ``${NAME:-default}`` is ``default``
when ``NAME`` is unset or empty (as in a shell); ``$${`` is a literal ``${``. Expansion happens
only in the string settings of agents (``model``, ``api_key``, ``base_url``, ``system_prompt``,
``description``, ``provider``, each ``command`` argument, and strings inside ``options``), and
only for the agents a run will use. Expanded values are never put in an error message, and
the value of a *secret variable* (``*_API_KEY``, ``*_TOKEN``...: :func:`is_secret_variable`)
expanded into any setting is a secret wherever it lands (:func:`secret_values`; the loader
registers them, so that every exit masks them: output, logs, state, reports, traces).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..secrets import is_secret_variable
from ._yaml import FieldPath

__all__ = [
    "EXPANDED_FIELDS",
    "Reference",
    "VariableSyntaxError",
    "expand",
    "expand_value",
    "iter_strings",
    "references",
    "secret_values",
]

EXPANDED_FIELDS = ("model", "api_key", "base_url", "system_prompt", "description", "provider")

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\Z", re.DOTALL)


class VariableSyntaxError(ValueError):
    """A ``${`` that does not start a valid reference."""


class Reference:
    """One ``${NAME}`` or ``${NAME:-default}`` in a string."""

    __slots__ = ("default", "name")

    def __init__(self, name: str, default: str | None) -> None:
        self.name = name
        self.default = default


def _scan(text: str) -> Iterator[tuple[re.Match[str], Reference | None]]:
    for match in _TOKEN.finditer(text):
        if match.group(0) == "$${":
            yield match, None
            continue
        body, close = match.group(1), match.group(2)
        parsed = _BODY.match(body) if close else None
        if parsed is None:
            shown = f"${{{body}{close}" if len(body) <= 40 else f"${{{body[:37]}..."
            raise VariableSyntaxError(
                f"malformed variable reference {shown!r}: write ${{NAME}} or "
                "${NAME:-default} (NAME: letters, digits and _), or $${ for a literal ${"
            )
        yield match, Reference(parsed.group(1), parsed.group(2))


def references(text: str) -> list[Reference]:
    """The references in ``text``; :class:`VariableSyntaxError` if one is malformed."""
    return [ref for _, ref in _scan(text) if ref is not None]


def expand(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its references replaced, and the names of unset variables (no default)."""
    out: list[str] = []
    missing: list[str] = []
    end = 0
    for match, ref in _scan(text):
        out.append(text[end : match.start()])
        end = match.end()
        if ref is None:
            out.append("${")
            continue
        value = environ.get(ref.name)
        if value:
            out.append(value)
        elif ref.default is not None:
            out.append(ref.default)
        elif value is None:
            missing.append(ref.name)
        # set but empty, no default: expands to ""
    out.append(text[end:])
    return "".join(out), missing


def iter_strings(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    """Every string inside ``value`` (nested lists and mappings), with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_strings(item, (*path, key))


def expand_value(value: Any, environ: Mapping[str, str]) -> Any:
    """A copy of ``value`` with every string in it expanded (unset variables become "")."""
    if isinstance(value, str):
        return expand(value, environ)[0]
    if isinstance(value, list):
        return [expand_value(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: expand_value(item, environ) for key, item in value.items()}
    return value


def secret_values(text: str, environ: Mapping[str, str]) -> list[str]:
    """The values that secret variables referred to in ``text`` expand to (set ones only)."""
    return [
        environ[ref.name]
        for ref in references(text)
        if is_secret_variable(ref.name) and environ.get(ref.name)
    ]

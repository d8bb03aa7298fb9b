"""Secrets: what counts as one, and the one way it is masked wherever text leaves the program.

Every place that writes text somewhere a person or a file can see it (log records, error
messages, the state store, reports) masks secrets here, the same way:

* :class:`Secret` wraps a value so that it never prints (``repr``, ``str``, f-strings).
* A *secret variable* is an environment variable whose name ends in ``API_KEY``, ``_TOKEN``,
  ``_SECRET``, ``_SECRET_KEY``, ``_ACCESS_KEY`` or ``_PASSWORD`` (:func:`is_secret_variable`);
  its value is a secret. A mapping key such as ``api_key``, ``token`` or ``password`` names a
  secret too (:func:`is_secret_key`), whatever its value.
* :func:`register_secret` adds a value met at run time (a key written in a project file, one
  sent to a Ray worker) to the secrets of this process.
* :func:`mask` replaces every known secret in a text by :data:`MASK`, the longest first so that a
  secret containing another goes whole. Values shorter than :data:`MIN_SECRET_LENGTH` are never
  secrets (a ``*_TOKEN=1`` would otherwise blank every "1").

:class:`Scrubber` is the same mask over a fixed set of secrets, for the store's writer thread;
:class:`RedactingFilter` is the same mask as a :class:`logging.Filter`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "Scrubber",
    "Secret",
    "is_secret_key",
    "is_secret_variable",
    "known_secrets",
    "mask",
    "register_secret",
    "secret_env_values",
]

MASK = "***"
"""What a secret is replaced by."""

MIN_SECRET_LENGTH = 8
"""Shorter values are never treated as secrets: too likely to match ordinary text."""

_SECRET_VARIABLE = re.compile(
    r"(^|_)(API_KEY|TOKEN|SECRET|SECRET_KEY|ACCESS_KEY|PASSWORD)$", re.IGNORECASE
)
_SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|token|secret|password|passwd|credentials?)$", re.IGNORECASE
)
_registered: set[str] = set()


class Secret:
    """A string that shows as ``***`` in ``repr``, ``str`` and f-strings; ``get()`` reveals it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value. Call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def is_secret_variable(name: str) -> bool:
    """Whether the environment variable ``name`` holds a secret (``OPENAI_API_KEY``...)."""
    return _SECRET_VARIABLE.search(name) is not None


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``token``, ``password``...)."""
    return _SECRET_KEY.search(name) is not None


def secret_env_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """The values of the secret variables of ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    return {v for k, v in env.items() if is_secret_variable(k) and len(v) >= MIN_SECRET_LENGTH}


def register_secret(value: str | Secret | None) -> None:
    """Treat ``value`` as a secret of this process from now on (masked everywhere)."""
    text = value.get() if isinstance(value, Secret) else value
    if text and len(text) >= MIN_SECRET_LENGTH:
        _registered.add(text)


def known_secrets() -> set[str]:
    """The registered secrets and the values of the secret variables, now."""
    return secret_env_values() | _registered


def _ordered(secrets: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def mask(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by :data:`MASK`: the given ones (each masked, whatever
    its length), else the process's :func:`known_secrets`."""
    for secret in _ordered(known_secrets() if secrets is None else secrets):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class Scrubber:
    """:func:`mask` over a fixed set of secrets (refreshed on demand), for text and JSON.

    The set is the process's known secrets (unless ``use_environ`` is false: then only those
    given) plus ``secrets`` and those :meth:`add` ed later. Safe to read from another thread.
    """

    def __init__(self, secrets: Iterable[str | Secret] = (), *, use_environ: bool = True) -> None:
        self._use_environ = use_environ
        self._extra: set[str] = set()
        self._values: tuple[str, ...] = ()
        self.add(*secrets)

    def refresh(self) -> None:
        """Read the process's secrets again (the environment may have changed)."""
        self._values = _ordered(self._extra | (known_secrets() if self._use_environ else set()))

    def add(self, *secrets: str | Secret | None) -> None:
        """Mask these values too."""
        for secret in secrets:
            value = secret.get() if isinstance(secret, Secret) else secret
            if value and len(value) >= MIN_SECRET_LENGTH:
                self._extra.add(value)
        self.refresh()

    def text(self, value: Any) -> str | None:
        """``value`` as masked text (``None`` stays ``None``; a :class:`Secret` is all mask)."""
        if value is None:
            return None
        if isinstance(value, Secret):
            return MASK
        if isinstance(value, Enum):
            value = value.value
        text = value if isinstance(value, str) else str(value)
        return mask(text, self._values)

    def json(self, value: Any) -> str:
        """Compact JSON of ``value``, masked: by value, and by key (:func:`is_secret_key`)."""
        text = json.dumps(
            self._clean(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return self.text(text) or ""

    def _clean(self, value: Any) -> Any:
        if isinstance(value, Secret):
            return MASK
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, Mapping):
            return {
                str(k): MASK if is_secret_key(str(k)) and v not in (None, "") else self._clean(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message and in the exception text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _ordered(known_secrets())
        if not secrets:
            return True
        message = record.getMessage()
        clean = mask(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask(text, secrets)
            record.exc_info = None  # the formatter uses exc_text, already masked
        return True

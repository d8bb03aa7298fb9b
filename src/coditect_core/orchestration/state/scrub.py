"""The defensive scrub applied to every text value before the state store writes it.

The store keeps only what it is given, and nobody should give it a key; this is the second line.
Known secret values are the values of environment variables whose names end in ``_API_KEY``,
``_TOKEN``, ``_SECRET`` (and a few like them, see :data:`SECRET_ENV_SUFFIXES`), plus every
:class:`~coditect_core.llm_abstractions.keys.Secret` registered with :meth:`Scrubber.add` or met as
a value. Each occurrence is replaced by :data:`REDACTED`. Values shorter than
:data:`MIN_SECRET_LENGTH` are ignored (a ``*_TOKEN=1`` would otherwise blank every "1").
JSON values are also scrubbed by key: a mapping key that names a secret (``api_key``, ``token``,
``password``...) has its value replaced whatever it is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from ...llm_abstractions.keys import Secret

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "SECRET_ENV_SUFFIXES", "Scrubber", "secret_env_values"]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8
SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_ACCESS_KEY", "_PASSWORD")
_SECRET_KEY_NAME = re.compile(
    r"(^|[_-])(api[_-]?key|token|secret|password|passwd|credentials?)$", re.IGNORECASE
)


def secret_env_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """The values of the secret-looking variables of ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    found = set()
    for name, value in env.items():
        upper = name.upper()
        if (upper.endswith(SECRET_ENV_SUFFIXES) or upper in ("API_KEY", "TOKEN", "SECRET")) and len(
            value
        ) >= MIN_SECRET_LENGTH:
            found.add(value)
    return found


class Scrubber:
    """Replaces known secret values in text and JSON. Thread-safe for reading once built."""

    def __init__(self, secrets: Iterable[str | Secret] = (), *, use_environ: bool = True) -> None:
        self._use_environ = use_environ
        self._extra: set[str] = set()
        self._values: tuple[str, ...] = ()
        self.add(*secrets)

    def refresh(self) -> None:
        """Re-read the environment (called when a run begins)."""
        values = set(self._extra)
        if self._use_environ:
            values |= secret_env_values()
        # Longest first, so that a secret containing another is replaced whole.
        self._values = tuple(sorted(values, key=len, reverse=True))

    def add(self, *secrets: str | Secret | None) -> None:
        """Register more secret values (e.g. the agents' keys)."""
        for secret in secrets:
            value = secret.get() if isinstance(secret, Secret) else secret
            if value and len(value) >= MIN_SECRET_LENGTH:
                self._extra.add(value)
        self.refresh()

    def text(self, value: Any) -> str | None:
        """``value`` as scrubbed text (None stays None; a Secret becomes :data:`REDACTED`)."""
        if type(value) is not str:
            if value is None:
                return None
            if isinstance(value, Secret):
                return REDACTED
            value = value.value if isinstance(value, Enum) else value
            value = value if isinstance(value, str) else str(value)
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def json(self, value: Any) -> str:
        """Compact JSON of ``value`` with secret-named keys and secret values redacted."""
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
            return REDACTED
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED
                if _SECRET_KEY_NAME.search(str(k)) and v not in (None, "")
                else self._clean(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return value

"""API keys: the one lookup every provider uses, and a wrapper that never shows the key.

The lookup order is: the explicit ``api_key`` argument, then each environment variable the
provider names, in order. A missing key fails before any network traffic, naming the variables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import LlmConfigurationError

__all__ = ["Secret", "resolve_api_key"]


class Secret:
    """A string that never appears in ``repr``, ``str``, logs or pickles of its holders' reprs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value. Call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def resolve_api_key(
    api_key: str | Secret | None,
    env_vars: Sequence[str],
    *,
    provider: str,
) -> Secret:
    """Return the key to use, or raise :class:`LlmConfigurationError` saying how to set one."""
    if isinstance(api_key, Secret):
        if api_key:
            return api_key
    elif api_key:
        return Secret(api_key)
    for var in env_vars:
        value = os.environ.get(var)
        if value:
            return Secret(value)
    names = " or ".join(env_vars)
    raise LlmConfigurationError(
        f"no API key: set {names} in the environment, or pass api_key=",
        provider=provider,
    )

"""One helper: a string (from YAML, JSON or a caller) as a member of an enum, or why not."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

__all__ = ["coerce_enum"]

E = TypeVar("E", bound=Enum)


def coerce_enum(enum: type[E], value: Any, *, what: str, owner: str, error: type[Exception]) -> E:
    """``value`` as a member of ``enum``, else ``error`` naming the owner, field and choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise error(f"{owner}: {what} is {value!r}; expected one of {allowed}") from None

"""The one set of formatters: durations, token counts, costs and times as text, for the
``coditect`` command and every report renderer alike."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..orchestration.spend import Tally

__all__ = [
    "clip",
    "clock",
    "cost",
    "count",
    "duration",
    "iso",
    "partial_cost",
    "plural",
    "tokens",
    "usd",
    "when",
]


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 m 05 s``, ``2 h 03 m``; an em dash for nothing."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def count(n: int | None) -> str:
    """``12,345``; an em dash for unknown."""
    return "—" if n is None else f"{n:,}"


def tokens(prompt: int | None, completion: int | None) -> str:
    """Input and output tokens: ``1,200 in / 345 out`` (an em dash for an unknown count)."""
    return f"{count(prompt)} in / {count(completion)} out"


def usd(value: float) -> str:
    """Dollars with two significant digits below a cent (``$0.000036``), cents above."""
    if value == 0:
        return "$0"
    if value < 0.01:
        decimals = min(1 - math.floor(math.log10(value)), 8)
        return f"${value:.{decimals}f}"
    return f"${value:,.2f}" if value >= 1 else f"${value:.3f}"


def partial_cost(known_usd: float, unknown: int | None = None) -> str:
    """A cost of which only a part is known: ``$1.23 + unknown``, or ``$1.23 + unknown (4)``
    when the costs of 4 attempts are unknown. A partial sum never passes for the whole."""
    return f"{usd(known_usd)} + unknown" + ("" if unknown is None else f" ({unknown})")


def cost(value: Tally | float | None, *, detail: bool = True) -> str:
    """A cost (of a tally of attempts, or one figure) as text: ``unknown`` when no price was
    known, :func:`partial_cost` when some were; ``detail=False`` leaves out how many."""
    if value is None:
        return "unknown"
    if not isinstance(value, Tally):
        return usd(value)
    status = value.cost_status
    if status == "unknown":
        return "unknown"
    if status == "partial":
        return partial_cost(value.cost_known_usd, value.cost_unknown if detail else None)
    return usd(value.cost_known_usd)


def when(ts: float | None) -> str:
    """A UNIX time in local time, ``2025-01-31 14:05:09 UTC``; an em dash for nothing."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock(ts: float | None) -> str:
    """A UNIX time as local ``HH:MM:SS``."""
    return "—" if ts is None else datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def iso(ts: float | None) -> str | None:
    """A UNIX time as an ISO 8601 string in UTC, for JSON (``None`` stays ``None``)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 retry``, ``2 retries`` (``many`` defaults to ``word + "s"``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def clip(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit

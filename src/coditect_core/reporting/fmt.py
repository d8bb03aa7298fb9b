"""The one set of formatters: durations, token counts, costs and times as text, for the
``coditect`` command and every report renderer alike; and the one way text from outside (an
agent, a tool, a file, a server) is made safe to show.

Text from outside is shown *inert*: every control character that a terminal could act on (the
C0 controls but newline and tab, DEL, the C1 controls such as U+009B CSI, and the bidirectional
overrides that reorder what is read) is written as a visible escape (``\\x1b``, ``\\x9b``,
``\\u202e``), so that no escape sequence (a window title, a clipboard write, a screen clear, a
query the terminal answers on stdin, a link) ever reaches a terminal, piped or not.
:func:`shown` also masks the known secrets (:func:`coditect_core.secrets.mask`, the one mask).
JSON keeps the exact text: :func:`json_inert` only writes the characters JSON leaves raw (DEL,
C1, the overrides) as ``\\uXXXX`` escapes, which decode to the same text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from ..orchestration.spend import Tally
from ..secrets import known_secrets, mask

__all__ = [
    "clip",
    "clip_bytes",
    "clock",
    "cost",
    "count",
    "duration",
    "inert",
    "iso",
    "json_inert",
    "masked",
    "partial_cost",
    "plural",
    "shown",
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


def clip_bytes(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many bytes (UTF-8) were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text[limit:].encode("utf-8", errors="replace"))


# C0 but tab and newline (a CR is kept only before a newline), DEL, C1, and the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: "Trojan source").
_UNSAFE = re.compile("\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` with every control character a terminal acts on written visibly (``ESC`` as
    ``\\x1b``, U+009B as ``\\x9b``, NUL as ``\\x00``); newlines, tabs and CR LF line ends are
    kept. Linear in the length; text without such characters comes back as is."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_visible, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_inert(document: str) -> str:
    """A JSON document (from :func:`json.dumps` with ``ensure_ascii=False``, which escapes C0
    but leaves DEL, C1 and the bidirectional overrides raw) with those characters escaped as
    ``\\uXXXX``: the same JSON value, and no raw control character on a terminal."""
    if _JSON_RAW.search(document) is None:
        return document
    return _JSON_RAW.sub(_json_escape, document)


def masked(
    text: str,
    secrets: Iterable[str] | None = None,
    *,
    encode: Callable[[str], str] | None = None,
) -> str:
    """``text`` with the known secrets (or ``secrets``) masked by :func:`secrets.mask`; with
    ``encode``, also each secret as ``encode`` writes it (a document that escapes its text,
    HTML or JSON, holds a secret in that form)."""
    values = set(known_secrets() if secrets is None else secrets)
    if encode is not None:
        values |= {encode(value) for value in values}
    return mask(text, values)


def shown(text: object, secrets: Iterable[str] | None = None) -> str:
    """Text from outside as it may be shown: the known secrets (or ``secrets``) masked, then
    :func:`inert`."""
    return inert(mask(text if isinstance(text, str) else str(text), secrets))

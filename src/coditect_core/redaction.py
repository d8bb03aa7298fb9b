"""Keeping secrets out of logs: a ``logging.Filter`` that masks API keys in messages and tracebacks.

The secrets it masks are the values of environment variables whose names look like credentials
(``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``) plus any registered at run time with
:func:`register_secret` (for example a key given explicitly in a project file).
"""

from __future__ import annotations

import logging
import os
import re

__all__ = ["RedactingFilter", "known_secrets", "redact", "register_secret"]

_SECRET_NAME = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)
_registered: set[str] = set()
_MIN_LEN = 6  # shorter values are too likely to match ordinary text


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log record from now on."""
    if value and len(value) >= _MIN_LEN:
        _registered.add(value)


def known_secrets() -> set[str]:
    """Registered secrets plus the values of credential-like environment variables."""
    found = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_LEN}
    return found | _registered


def redact(text: str, secrets: set[str] | None = None) -> str:
    """``text`` with every known secret replaced by ``***``."""
    for secret in sorted(
        secrets if secrets is not None else known_secrets(), key=len, reverse=True
    ):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message and in exception text of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secrets()
        if not secrets:
            return True
        message = record.getMessage()
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, secrets)
            record.exc_info = None  # the formatter uses exc_text, already redacted
        return True

"""API keys: the one lookup every provider uses, and a wrapper that never shows the key.

The lookup order is: the explicit ``api_key`` argument, then each environment variable the
provider names, in order (blank values count as unset). A missing key fails before any network
traffic, naming the variables. A key found is registered with :mod:`coditect_core.secrets`, so
the log filter masks it too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import LlmConfigurationError
from ..secrets import Secret, register_secret

__all__ = ["Secret", "resolve_api_key"]


def resolve_api_key(
    api_key: str | Secret | None,
    env_vars: Sequence[str],
    *,
    provider: str,
) -> Secret:
    """Return the key to use, or raise :class:`LlmConfigurationError` saying how to set one."""
    explicit = api_key.get() if isinstance(api_key, Secret) else api_key
    for value in (explicit, *(os.environ.get(var) for var in env_vars)):
        if value and value.strip():
            register_secret(value.strip())
            return Secret(value.strip())
    # Words a command's user and a library's user both act on (the ``api_key`` setting of an
    # agent, the ``api_key`` argument of a provider): no Python call syntax.
    where = f"set {' or '.join(env_vars)} (or give the agent an api_key)" if env_vars else ""
    raise LlmConfigurationError(
        f"no API key: {where or 'give the agent an api_key'}", provider=provider
    )

"""Floor 3: the ``coditect`` command. Renders results and maps them to exit codes; never decides."""

from __future__ import annotations

__all__: list[str] = []

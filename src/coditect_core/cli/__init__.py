"""The ``coditect`` command (the top layer): parses, calls :mod:`coditect_core.app`, renders
results and maps them to exit codes; never decides."""

from __future__ import annotations

__all__: list[str] = []

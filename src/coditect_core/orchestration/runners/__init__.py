"""Runners: where a task's call executes (this process, or a Ray cluster).

``ray`` is imported only by :mod:`.ray`, and only when a :class:`~.ray.RayRunner` connects.
"""

from __future__ import annotations

from .base import RUNNER_NAMES, Runner, make_runner
from .local import LocalRunner

__all__ = ["RUNNER_NAMES", "LocalRunner", "Runner", "make_runner"]

"""Runners: where an agent's requests run (this process, or a Ray cluster).

``ray`` is imported only by :mod:`.ray`, and only when a :class:`~.ray.RayRunner` connects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import RUNNER_NAMES, Runner
from .local import LocalRunner

__all__ = ["RUNNER_NAMES", "LocalRunner", "Runner", "make_runner"]


def make_runner(
    name: str | None = None,
    *,
    address: str | None = None,
    resources: Mapping[str, Any] | None = None,
    **options: Any,
) -> Runner:
    """The runner called ``name`` (default ``"local"``).

    ``address`` (the Ray cluster; else ``RAY_ADDRESS``, else a Ray of the run's own) and
    ``resources`` (agent name -> ``num_cpus``/``num_gpus``, a mapping or an object with those
    fields) are for ``"ray"``, and ignored by ``"local"``; other ``options`` go to
    :class:`~.ray.RayRunner`.
    :class:`RunnerError` for an unknown name.
    """
    from ...errors import RunnerError

    name = name or "local"
    if name == "local":
        if options:
            raise RunnerError(f"the local runner takes no options, got {', '.join(options)}")
        return LocalRunner()
    if name == "ray":
        from .ray import RayRunner

        return RayRunner(address, resources=resources, **options)
    raise RunnerError(f"unknown runner {name!r}; expected one of {', '.join(RUNNER_NAMES)}")

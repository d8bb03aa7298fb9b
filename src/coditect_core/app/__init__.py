"""The use cases the ``coditect`` command calls, one module each.

* :mod:`.session` run a project: its file, its state store and an orchestrator, together
* :mod:`.view`    view it: status, tasks, show, next (read-only)
* :mod:`.by_hand` record what a person did to a task (complete, fail, cancel, reset)
* :mod:`.doctor`  check which agents can be used here, and ping them
"""

from __future__ import annotations

__all__: list[str] = []

"""The parts of the durable state store (:mod:`coditect_core.orchestration.store`).

* :mod:`.schema`   the file format: identity checks, schema, numbered migrations
* :mod:`.writer`   the single writer thread and its group commit, in submission order
* :mod:`.checkpoint` WAL checkpoints from a thread of their own, off the writer's path
* :mod:`.bulk`     a batch's transitions as rows, written by TEMP triggers in one statement
* :mod:`.ops`      the write operations (run begin/finish, task and attempt transitions)
* :mod:`.records`  the records handed back, and the read queries
* :mod:`.lock`     the per-project run lock (``flock``), taken over from dead holders
* :mod:`.plan`     content hashes and the resume plan (pure)
* :mod:`.scrub`    the secret scrub applied to every text written
* :mod:`.legacy`   import of the original orchestrator's ``project_state.json``
* :mod:`.observer` the orchestrator observer that records a run into a store
* :mod:`.null`     ``NullRecorder``: the write interface, keeping nothing
"""

from __future__ import annotations

__all__: list[str] = []

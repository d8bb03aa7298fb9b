"""The call journal of a project, as ``coditect cache`` sees it: what it holds, and forgetting it.

The journal itself (what is kept, and when a run's requests are answered from it) is
:mod:`coditect_core.orchestration.journal` and :mod:`coditect_core.store.journal`.
"""

from __future__ import annotations

import os

from ..project import read_project_file
from ..store import StateStore, state_path_for
from ..store.journal import JournalStats

__all__ = ["clear_journal", "journal_stats"]


def journal_stats(
    path: str | os.PathLike[str], *, state: str | os.PathLike[str] | None = None
) -> JournalStats:
    """What the journal of the project at ``path`` holds (read-only; nothing recorded yet
    when the project has no state). Raises :class:`ProjectFileError`, :class:`StateError`."""
    name = read_project_file(path).name
    db = state_path_for(path, state)
    if not db.exists():
        return JournalStats(name, 0, 0, 0, 0, 0, 0.0, 0)
    with StateStore.open(db, readonly=True) as store:
        return store.journal_stats(name)


def clear_journal(
    path: str | os.PathLike[str], *, state: str | os.PathLike[str] | None = None
) -> int:
    """Forget the journal of the project at ``path``; the number of answers forgotten.
    Refused (:class:`RunLockedError`) while a run of the project is live."""
    name = read_project_file(path).name
    db = state_path_for(path, state)
    if not db.exists():
        return 0
    with StateStore.open(db) as store:
        return store.clear_journal(name)

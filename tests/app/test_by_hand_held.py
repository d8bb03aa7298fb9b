"""A task held by hand is the store's ``held`` flag: set by ``cancel``, cleared by ``reset``,
``complete`` and ``fail``; never decided from the text of its error."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_projects import fake_project

from coditect_core.app.by_hand import ByHand, record_by_hand
from coditect_core.app.view import load_view
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(60)


def _held(project: Path) -> set[str]:
    return {view.task_id for view in load_view(project).tasks if view.held}


@pytest.mark.parametrize("undo", [ByHand.RESET, ByHand.COMPLETE, ByHand.FAIL])
async def test_cancel_holds_and_every_other_action_releases(tmp_path: Path, undo: ByHand) -> None:
    project = fake_project(tmp_path)
    await record_by_hand(project, "STEP-4.5", ByHand.CANCEL, note="out of scope")
    assert _held(project) == {"STEP-4.5"}
    await record_by_hand(project, "STEP-4.6", ByHand.CANCEL)
    assert _held(project) == {"STEP-4.5", "STEP-4.6"}
    await record_by_hand(project, "STEP-4.5", undo)
    assert _held(project) == {"STEP-4.6"}


async def test_held_is_not_read_from_the_error_text(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    await record_by_hand(project, "STEP-4.1", ByHand.CANCEL)
    db = tmp_path / ".coditect" / "state.db"
    with StateStore.open(db) as store:  # a run's own cancel, whatever its error says
        run = await store.begin_run("quick-fake")
        await store.task_finished(
            run.run_id, "STEP-4.2", "cancelled", error="cancelled by hand (so it says)"
        )
        await store.finish_run(run.run_id)
    view = load_view(project)
    assert view.task("STEP-4.2").row.error == "cancelled by hand (so it says)"
    assert _held(project) == {"STEP-4.1"}
    assert view.task("STEP-4.1").row.error == "cancelled by hand"

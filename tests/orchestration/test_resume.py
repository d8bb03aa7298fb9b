"""Content hashes and the change-triggered re-run plan (pure functions)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coditect_core.errors import SchedulingError
from coditect_core.orchestration.resume import SuccessRecord, plan_resume, task_content_hash
from coditect_core.orchestration.scheduler import descendants

BASE = {"prompt": "Write the parser.", "agent": "claude", "model": "claude-x", "dependencies": []}


def test_hash_is_sha256_of_canonical_json() -> None:
    digest = task_content_hash(**BASE)
    assert digest.startswith("sha256:")
    payload = {
        "format": 1,
        "prompt": "Write the parser.",
        "agent": "claude",
        "model": "claude-x",
        "dependencies": [],
        "extra": {},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def test_hash_ignores_dependency_order_and_duplicates() -> None:
    one = task_content_hash(**{**BASE, "dependencies": ["A", "B"]})
    two = task_content_hash(**{**BASE, "dependencies": ["B", "A", "B"]})
    assert one == two


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Write the lexer."},
        {"prompt": "Write the parser. "},
        {"agent": "gpt"},
        {"model": "claude-y"},
        {"model": None},
        {"dependencies": ["A"]},
    ],
)
def test_hash_changes_with_what_the_task_asks(change: dict) -> None:
    assert task_content_hash(**{**BASE, **change}) != task_content_hash(**BASE)


def test_hash_covers_extra_settings_and_unicode() -> None:
    plain = task_content_hash(**BASE)
    assert task_content_hash(**BASE, temperature=0.2) != plain
    assert task_content_hash(**BASE, temperature=0.2) == task_content_hash(**BASE, temperature=0.2)
    assert task_content_hash(**{**BASE, "prompt": "Écris"}) != task_content_hash(
        **{**BASE, "prompt": "Ecris"}
    )


def _graph() -> tuple[dict[str, str], dict[str, list[str]]]:
    #   A -> B -> D
    #   A -> C
    #   E (independent)
    deps = {"A": [], "B": ["A"], "C": ["A"], "D": ["B"], "E": []}
    return {t: f"h-{t}" for t in deps}, deps


def _all_succeeded(hashes: dict[str, str]) -> dict[str, SuccessRecord]:
    order = ["A", "B", "C", "D", "E"]
    return {t: SuccessRecord(hashes[t], seq=i + 1, output=t.lower()) for i, t in enumerate(order)}


def test_nothing_runs_when_nothing_changed() -> None:
    hashes, deps = _graph()
    plan = plan_resume(hashes, deps, _all_succeeded(hashes))
    assert plan.run == ()
    assert set(plan.skip) == set(deps)


def test_everything_runs_on_a_fresh_project() -> None:
    hashes, deps = _graph()
    plan = plan_resume(hashes, deps, {})
    assert sorted(plan.run) == ["A", "B", "C", "D", "E"]
    assert plan.run.index("A") < plan.run.index("B") < plan.run.index("D")
    assert plan.run.index("A") < plan.run.index("C")
    assert all(reason == "not succeeded yet" for reason in plan.reasons.values())


def test_changed_task_reruns_with_everything_downstream() -> None:
    hashes, deps = _graph()
    succeeded = _all_succeeded(hashes)
    hashes = {**hashes, "B": "h-B-edited"}
    plan = plan_resume(hashes, deps, succeeded)
    assert set(plan.run) == {"B", "D"}
    assert set(plan.skip) == {"A", "C", "E"}
    assert plan.changed == ("B",)
    assert plan.reasons["B"] == "definition changed"
    assert plan.reasons["D"] == "upstream B runs"


def test_change_at_the_root_reruns_its_whole_subtree() -> None:
    hashes, deps = _graph()
    succeeded = _all_succeeded(hashes)
    plan = plan_resume({**hashes, "A": "h-A2"}, deps, succeeded)
    assert set(plan.run) == {"A", "B", "C", "D"}
    assert plan.skip == ("E",)


def test_unfinished_task_reruns_its_dependents_too() -> None:
    hashes, deps = _graph()
    succeeded = _all_succeeded(hashes)
    del succeeded["C"]  # failed or interrupted last time
    plan = plan_resume(hashes, deps, succeeded)
    assert set(plan.run) == {"C"}
    del succeeded["A"]
    assert set(plan_resume(hashes, deps, succeeded).run) == {"A", "B", "C", "D"}


def test_dependent_older_than_a_rerun_upstream_is_rebuilt() -> None:
    # A run re-ran B after a change and died before D: B's success is newer than D's.
    hashes, deps = _graph()
    succeeded = _all_succeeded(hashes)
    succeeded["B"] = SuccessRecord(hashes["B"], seq=99)
    plan = plan_resume(hashes, deps, succeeded)
    assert set(plan.run) == {"D"}
    assert plan.reasons["D"] == "upstream B succeeded after it"


def test_a_task_kept_by_hand_never_runs_for_its_upstream_or_a_change() -> None:
    # B was completed by a person while A had not run: A runs, B is kept, D follows B only.
    hashes, deps = _graph()
    succeeded = _all_succeeded(hashes)
    del succeeded["A"]
    succeeded["B"] = SuccessRecord(hashes["B"], seq=1, output="by hand")
    plan = plan_resume(hashes, deps, succeeded, kept={"B"})
    assert set(plan.run) == {"A", "C"}
    assert plan.kept == ("B",)
    assert "B" in plan.skip
    assert "B" not in plan.reasons
    # Its own definition changed: still kept (a rerun by hand releases it).
    edited = plan_resume({**hashes, "B": "h-B2"}, deps, _all_succeeded(hashes), kept={"B"})
    assert edited.run == ()
    # Without a success record, "kept" means nothing: the task runs.
    del succeeded["B"]
    assert "B" in plan_resume(hashes, deps, succeeded, kept={"B"}).run


def test_imported_success_without_hash_is_trusted() -> None:
    hashes, deps = _graph()
    succeeded = {t: SuccessRecord(None, seq=i + 1) for i, t in enumerate(["A", "B", "C", "D", "E"])}
    assert plan_resume(hashes, deps, succeeded).run == ()


def test_bad_graphs_are_refused() -> None:
    with pytest.raises(SchedulingError, match="cycle"):
        plan_resume({"A": "h", "B": "h"}, {"A": ["B"], "B": ["A"]}, {})
    with pytest.raises(SchedulingError, match="unknown task"):
        plan_resume({"A": "h"}, {"A": ["Z"]}, {})
    with pytest.raises(ValueError, match="different tasks"):
        plan_resume({"A": "h"}, {"A": [], "B": []}, {})


@st.composite
def projects(draw):
    n = draw(st.integers(1, 12))
    ids = [f"T{i}" for i in range(n)]
    deps = {t: sorted(set(draw(st.lists(st.sampled_from(ids[:i]), max_size=3)))) if i else []
            for i, t in enumerate(ids)}  # fmt: skip
    hashes = {t: f"h{draw(st.integers(0, 1))}" for t in ids}
    succeeded = {}
    for t in ids:
        if draw(st.booleans()):
            succeeded[t] = SuccessRecord(
                f"h{draw(st.integers(0, 1))}", seq=draw(st.integers(1, 50))
            )
    return hashes, deps, succeeded


@settings(max_examples=200, deadline=None)
@given(projects())
def test_plan_properties(project) -> None:
    hashes, deps, succeeded = project
    plan = plan_resume(hashes, deps, succeeded)
    run, skip = set(plan.run), set(plan.skip)
    assert run | skip == set(deps)
    assert not run & skip
    # Everything downstream of something that runs also runs.
    assert descendants(deps, run) <= run
    # A skipped task succeeded with its current definition, after each of its dependencies.
    for t in skip:
        record = succeeded[t]
        assert record.content_hash == hashes[t]
        assert all(succeeded[d].seq <= record.seq for d in deps[t])
    # A task that never succeeded, or changed, always runs.
    for t in deps:
        if t not in succeeded or succeeded[t].content_hash != hashes[t]:
            assert t in run
    # Dependencies come first in the run order.
    position = {t: i for i, t in enumerate(plan.run)}
    for t in plan.run:
        assert all(position[d] < position[t] for d in deps[t] if d in position)

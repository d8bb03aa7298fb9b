"""Whatever a project file holds, loading it succeeds or raises ProjectFileError with a line."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coditect_core.errors import ProjectFileError
from coditect_core.project import parse_project_file

BASE: dict[str, Any] = {
    "project": "fuzz",
    "defaults": {"agent": "local", "max_concurrency": 2},
    "agents": {
        "local": {"type": "local", "max_tokens": 50},
        "gpt": {
            "type": "openai-gpt",
            "api_key": "${FUZZ_KEY}",
            "fallbacks": ["local"],
            "options": {"seed": 1},
        },
    },
    "tasks": [
        {"id": "A", "title": "a"},
        {"id": "B", "title": "b", "agent": "gpt", "dependencies": ["A"]},
        {"id": "C", "title": "c", "dependencies": ["A", "B"], "metadata": {"k": [1]}},
    ],
}

FIELDS = [
    ("project",),
    ("runner",),
    ("budget",),
    ("defaults",),
    ("defaults", "agent"),
    ("defaults", "timeout"),
    ("agents",),
    ("agents", "local"),
    ("agents", "local", "type"),
    ("agents", "local", "max_tokens"),
    ("agents", "local", "temperature"),
    ("agents", "local", "price"),
    ("agents", "gpt", "api_key"),
    ("agents", "gpt", "fallbacks"),
    ("agents", "gpt", "interface"),
    ("agents", "gpt", "command"),
    ("agents", "gpt", "options"),
    ("agents", "gpt", "new_field"),
    ("tasks",),
    ("tasks", 0),
    ("tasks", 1, "id"),
    ("tasks", 1, "agent"),
    ("tasks", 2, "dependencies"),
    ("tasks", 2, "dependencies", 0),
    ("tasks", 2, "priority"),
    ("tasks", 2, "metadata"),
    ("tasks", 2, "estimated_hours"),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["A", "B", "C", "local", "gpt", "api", "cli", "${X}", "${", "high", "ray"]),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(
    edits=st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=3),
    env=st.dictionaries(st.sampled_from(["FUZZ_KEY", "X"]), st.text(max_size=4), max_size=2),
)
def test_any_edit_loads_or_fails_with_a_located_error(
    edits: list[tuple[tuple[Any, ...], Any]], env: dict[str, str]
) -> None:
    data = copy.deepcopy(BASE)
    for path, value in edits:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set(data, path, value)  # fails when an earlier edit replaced the parent
    text = yaml.safe_dump(data, sort_keys=False)
    error: ProjectFileError | None = None
    try:
        parse_project_file(text, "fuzz.yaml").resolve(environ=env)
    except ProjectFileError as caught:
        error = caught
    if error is not None:
        assert str(error).startswith("fuzz.yaml")
        if error.field is not None:
            assert error.line is not None, str(error)
            assert 1 <= error.line <= text.count("\n") + 1

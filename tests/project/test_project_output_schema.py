"""A task's ``output_schema:`` (inline, or a ``.json`` file beside the project file),
``output_mode:`` and ``output_retries:`` in the project file, as the loader reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError
from coditect_core.project import load_project, parse_project_file

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

BASE = """
agents: {a: {type: custom, provider: fake}}
tasks:
  - id: T1
    title: typed
"""


def test_inline_schema_mode_and_retries_reach_the_task() -> None:
    text = BASE + f"    output_schema: {json.dumps(SCHEMA)}\n    output_mode: tool\n"
    text += "    output_retries: 4\n  - {id: T2, title: plain}\n"
    project = parse_project_file(text).resolve()
    typed, plain = project.tasks
    assert typed.output_schema == SCHEMA
    assert typed.typed_output() == {
        "output_schema": SCHEMA,
        "output_mode": "tool",
        "output_retries": 4,
    }
    assert plain.output_schema is None
    assert plain.typed_output() == {}


def test_a_schema_file_is_read_beside_the_project(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "n.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(BASE + "    output_schema: s/n.json\n", encoding="utf-8")
    (task,) = load_project(path).tasks
    assert task.output_schema == SCHEMA


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    output_mode: best\n", "output_mode"),
        ("    output_retries: 11\n", "output_retries"),
        ("    output_retries: -1\n", "output_retries"),
        ("    output_schema: []\n", "output_schema"),
        ('    output_schema: {"type": "object", "required": "n"}\n', "not a valid JSON Schema"),
    ],
)
def test_bad_typed_output_settings_are_refused(extra: str, message: str) -> None:
    with pytest.raises(ProjectFileError, match=message) as caught:
        parse_project_file(BASE + extra)
    assert "tasks[0]" in str(caught.value)


def test_the_content_hash_changes_with_the_schema_only_for_typed_tasks() -> None:
    from coditect_core.orchestration.resume import agent_task_hash

    plain = parse_project_file(BASE).resolve()
    typed = parse_project_file(BASE + f"    output_schema: {json.dumps(SCHEMA)}\n").resolve()
    other = dict(SCHEMA, required=[])
    retyped = parse_project_file(BASE + f"    output_schema: {json.dumps(other)}\n").resolve()
    hashes = {
        agent_task_hash(p.tasks[0], p.agents, p.defaults.agent) for p in (plain, typed, retyped)
    }
    assert len(hashes) == 3

"""Typed task outputs through the real ``coditect`` processes: a task's ``output_schema:`` (a
``.json`` file beside the project), the invalid first reply re-asked as a second attempt, the
value in ``show`` (pretty), ``--json`` and the report (md, json, html), given to its dependent as
JSON, kept by a resume; a model that never complies fails the task with the last errors; a
missing or broken schema file is an error naming the file and the task."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import run_cli, run_json

pytestmark = pytest.mark.timeout(180)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"fruit": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    "required": ["fruit", "count"],
}
VALUE = {"fruit": "apple", "count": 3}


def write_project(
    directory: Path,
    replies: list[str],
    *,
    schema: Any = "schemas/count.json",
    use_description: str = "Use the count.",
    retries: int | None = None,
) -> Path:
    (directory / "schemas").mkdir(exist_ok=True)
    (directory / "schemas" / "count.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    count: dict[str, Any] = {
        "id": "COUNT",
        "title": "Count the apples",
        "agent": "counter",
        "output_schema": schema,
    }
    if retries is not None:
        count["output_retries"] = retries
    spec = {
        "project": "typed",
        "defaults": {"agent": "echo"},
        "agents": {
            "echo": {"type": "custom", "provider": "fake"},
            "counter": {"type": "custom", "provider": "fake", "options": {"replies": replies}},
        },
        "tasks": [
            count,
            {
                "id": "USE",
                "title": "Use the count",
                "description": use_description,
                "dependencies": ["COUNT"],
            },
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def sent_user_messages(directory: Path) -> list[str]:
    """Every user message the runs sent, from the call journal in the state database."""
    conn = sqlite3.connect(directory / ".coditect" / "state.db")
    try:
        rows = conn.execute("SELECT content FROM journal_messages WHERE role = 'user'")
        return [r[0] for r in rows]
    finally:
        conn.close()


def test_a_typed_task_end_to_end(tmp_path: Path) -> None:
    project = write_project(tmp_path, ["There are three apples.", json.dumps(VALUE)])
    done = run_cli("run", project)
    assert done.returncode == 0, done.stderr

    shown = run_json("show", project, "COUNT")
    assert shown["value"] == VALUE
    assert json.loads(shown["output"]) == VALUE
    first, second = shown["attempts"]
    assert first["status"] == "failed"
    assert "not JSON" in first["error"]
    assert second["status"] == "succeeded"

    plain = run_cli("show", project, "COUNT")
    assert plain.returncode == 0, plain.stderr
    assert "value (validated JSON)" in plain.stdout
    assert '  "count": 3' in plain.stdout  # pretty

    # The dependent got the value as a JSON block in its context.
    with_json = [m for m in sent_user_messages(tmp_path) if m.startswith("# Task USE")]
    assert len(with_json) == 1
    assert f"```json\n{json.dumps(VALUE, indent=2)}\n```" in with_json[0]

    # show's prompt of the dependent is what it was sent: the value as a JSON block.
    prompt = run_json("show", project, "USE")["prompt"]
    assert f"```json\n{json.dumps(VALUE, indent=2)}\n```" in prompt

    report = run_json("report", project)
    (count_row,) = [t for t in report["tasks"] if t["task_id"] == "COUNT"]
    assert count_row["value"] == VALUE
    md = run_cli("report", project)
    assert "## Values" in md.stdout
    assert '"fruit": "apple"' in md.stdout
    html = run_cli("report", project, "--format", "html")
    assert "Value (validated against its output_schema)" in html.stdout

    # A resume: USE changed, so it runs again; COUNT is kept, and its value still reaches USE.
    write_project(tmp_path, ["unused"], use_description="Use the count, twice.")
    again = run_cli("run", project)
    assert again.returncode == 0, again.stderr
    assert len(run_json("show", project, "COUNT")["attempts"]) == 2  # not run again
    assert run_json("show", project, "COUNT")["value"] == VALUE
    resumed = [m for m in sent_user_messages(tmp_path) if "Use the count, twice." in m]
    assert len(resumed) == 1
    assert f"```json\n{json.dumps(VALUE, indent=2)}\n```" in resumed[0]


def test_a_model_that_never_complies_fails_the_task_with_the_last_errors(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path, ['{"fruit": "apple"}'] * 3, retries=1)
    done = run_cli("run", project)
    assert done.returncode != 0
    shown = run_json("show", project, "COUNT")
    assert shown["status"] == "failed"
    assert "'count' is a required property" in shown["error"]
    assert "after 2 tries" in shown["error"]
    assert len(shown["attempts"]) == 2
    assert "value" not in shown
    assert run_json("show", project, "USE")["status"] == "blocked"


@pytest.mark.parametrize(
    ("schema", "file_text", "expected"),
    [
        ("schemas/missing.json", None, "schema file 'schemas/missing.json' does not exist"),
        ("schemas/count.json", "{not json", "is not valid JSON"),
        ("schemas/count.json", '{"type": 12}', "is not a valid JSON Schema"),
        ("schemas/count.yaml", None, "is not a .json file"),
        ({"type": "no-such-type"}, None, "output_schema is not a valid JSON Schema"),
    ],
)
def test_a_broken_schema_is_an_error_naming_the_file_and_the_task(
    tmp_path: Path, schema: Any, file_text: str | None, expected: str
) -> None:
    project = write_project(tmp_path, [json.dumps(VALUE)], schema=schema)
    if file_text is not None:
        (tmp_path / "schemas" / "count.json").write_text(file_text, encoding="utf-8")
    done = run_cli("run", project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "task 'COUNT'" in done.stderr
    assert "tasks[0].output_schema" in done.stderr
    assert not (tmp_path / ".coditect" / "state.db").exists()  # nothing ran

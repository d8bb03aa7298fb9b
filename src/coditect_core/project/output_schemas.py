"""A task's ``output_schema:``: a JSON Schema inline, or the path of a ``.json`` file beside the
project file; read and checked to be a valid JSON Schema, with ``output_mode`` and
``output_retries`` beside it.

A relative path is taken from the project file's folder (from the working directory for a
project given as text). A file that is missing, unreadable, not JSON, or not a valid JSON Schema
is a problem naming the task, the field, the file and why; nothing runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..llm_abstractions.output import check_json_schema
from ._yaml import FieldPath, LineMap
from .diagnostics import Problem
from .schema import ProjectSpec

__all__ = ["MAX_SCHEMA_BYTES", "read_output_schemas"]

MAX_SCHEMA_BYTES = 1_000_000
"""The largest schema file read (a schema is small; a bigger file is a mistake)."""


def read_output_schemas(
    spec: ProjectSpec, lines: LineMap, project_path: str
) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """``({task id: its JSON Schema}, problems)`` for the tasks with an ``output_schema``."""
    base = Path.cwd() if project_path.startswith("<") else Path(project_path).parent
    schemas: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for index, task in enumerate(spec.tasks):
        given = task.output_schema
        if given is None:
            continue
        at: FieldPath = ("tasks", index, "output_schema")
        label = f"task {task.id!r}"
        if isinstance(given, str):
            schema, why = _read_file(base, given)
            if why is not None:
                problems.append(
                    Problem(at, f"{label}: schema file {given!r} {why}", lines.line(at))
                )
                continue
            where = f"schema file {given!r}"
        else:
            schema, where = dict(given), "output_schema"
        errors = check_json_schema(schema)
        if errors:
            problems.append(
                Problem(
                    at,
                    f"{label}: {where} is not a valid JSON Schema: {'; '.join(errors[:3])}",
                    lines.line(at),
                )
            )
            continue
        assert isinstance(schema, dict)
        schemas[task.id] = schema
    return schemas, problems


def _read_file(base: Path, name: str) -> tuple[Any, str | None]:
    """The JSON in file ``name`` (relative to ``base``), or why it cannot be had."""
    if not name.endswith(".json"):
        return None, "is not a .json file (give a JSON Schema inline, or a .json file's path)"
    path = (base / name).absolute()
    try:
        size = path.stat().st_size
        if size > MAX_SCHEMA_BYTES:
            return None, f"({path}) is over {MAX_SCHEMA_BYTES // 1_000_000} MB"
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"does not exist (looked for {path})"
    except IsADirectoryError:
        return None, f"({path}) is a directory"
    except UnicodeDecodeError:
        return None, f"({path}) is not UTF-8 text"
    except OSError as error:
        return None, f"({path}) cannot be read: {error.strerror}"
    try:
        data = json.loads(text)
    except ValueError as error:
        return None, f"({path}) is not valid JSON: {error}"
    return data, None

"""Which project file a command means: its PROJECT argument, a folder's ``coditect.yaml``, or
``./coditect.yaml`` (what ``coditect init`` writes) when none is named.

Every command that takes a PROJECT resolves it here, so they all find the same file and say
the same thing about a wrong path: the nearest YAML files in that folder, by name.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer

from .output import ExitCode, fail

__all__ = [
    "DEFAULT_PROJECT_FILE",
    "PROJECT_HELP",
    "ProjectArg",
    "ProjectWordArg",
    "TaskIdArg",
    "project_and_id",
    "project_file",
]

DEFAULT_PROJECT_FILE = "coditect.yaml"
"""The file a command uses when no PROJECT is named (and the one ``coditect init`` writes)."""

PROJECT_HELP = (
    f"The project file, or a folder holding a {DEFAULT_PROJECT_FILE} "
    f"(default: ./{DEFAULT_PROJECT_FILE})."
)

ProjectArg = Annotated[
    Path | None,
    typer.Argument(metavar="PROJECT", help=PROJECT_HELP, show_default=False),
]
"""The optional PROJECT argument of every command that reads a project."""

ProjectWordArg = Annotated[
    str | None,
    typer.Argument(
        metavar="PROJECT", help=f"{PROJECT_HELP} One word alone is the ID.", show_default=False
    ),
]
"""PROJECT before a task's ID: ``[PROJECT] ID`` (see :func:`project_and_id`)."""

TaskIdArg = Annotated[
    str | None, typer.Argument(metavar="ID", help="The task id.", show_default=False)
]
"""A task's ID after an optional PROJECT: given, though Click sees it optional."""

_SUGGESTED = 3


def _yaml_files(folder: Path) -> list[str]:
    try:
        return sorted(
            p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    except OSError:  # the folder is missing or cannot be listed: nothing to suggest
        return []


def _nearest(name: str, candidates: list[str]) -> list[str]:
    """``candidates`` closest to ``name`` first (the closest few when many are close)."""
    close = difflib.get_close_matches(name, candidates, n=_SUGGESTED, cutoff=0.5)
    if close:
        return close
    ranked = sorted(candidates, key=lambda c: -difflib.SequenceMatcher(None, name, c).ratio())
    return ranked[:_SUGGESTED]


def _shown(folder: Path, name: str) -> str:
    return name if folder == Path(".") else str(folder / name)


def missing_message(path: Path, *, named: bool) -> str:
    """Why ``path`` is not a project file, and the nearest YAML files beside it."""
    folder = path.parent
    message = f"{path}: no such file"
    if not named:
        message += f" (with no PROJECT, coditect reads ./{DEFAULT_PROJECT_FILE})"
    elif not folder.is_dir():
        message += f" (no folder {folder})"
    nearest = [_shown(folder, n) for n in _nearest(path.name, _yaml_files(folder))]
    if nearest:
        message += f"; did you mean {' or '.join(nearest)}?"
    elif not named or path.name == DEFAULT_PROJECT_FILE:
        message += "; create one with: coditect init"
    return message


def project_file(project: Path | None, *, as_json: bool = False) -> Path:
    """The project file ``project`` means (see the module), or exit 2 saying why not."""
    path = Path(DEFAULT_PROJECT_FILE) if project is None else project
    if path.is_dir():
        path = path / DEFAULT_PROJECT_FILE
    if path.exists():
        return path
    fail(missing_message(path, named=project is not None), ExitCode.BAD_INPUT, as_json=as_json)


def project_and_id(
    project: str | None, task_id: str | None, *, as_json: bool = False
) -> tuple[Path, str]:
    """The project file and task id of ``[PROJECT] ID``: one word is the id, in ./coditect.yaml."""
    if task_id is not None:
        return project_file(None if project is None else Path(project), as_json=as_json), task_id
    if project is None:
        fail("missing argument ID: the task id", ExitCode.BAD_INPUT, as_json=as_json)
    if project.endswith((".yaml", ".yml")) or Path(project).is_dir():  # a PROJECT, not an ID
        fail(f"missing argument ID: the task id after {project}", as_json=as_json)
    return project_file(None, as_json=as_json), project

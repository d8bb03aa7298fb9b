"""Project files: the YAML format, read into agents (``AgentConfig``) and tasks (``AgentTask``).

See :mod:`coditect_core.project_file` for the format. The package splits along its seams:
:mod:`._yaml` (safe parsing with lines), :mod:`.schema` (types), :mod:`.checks` (cross-field
rules), :mod:`.env` (``${VAR}``), :mod:`.diagnostics` (error text), :mod:`.loader` (the API).
"""

from __future__ import annotations

from ._yaml import MAX_FILE_BYTES
from .loader import (
    AgentSettings,
    Project,
    ProjectFile,
    load_project,
    parse_project_file,
    read_project_file,
)
from .schema import (
    AgentSpec,
    BudgetSpec,
    DefaultsSpec,
    PriceSpec,
    ProjectSpec,
    ResourcesSpec,
    TaskSpec,
)

__all__ = [
    "MAX_FILE_BYTES",
    "AgentSettings",
    "AgentSpec",
    "BudgetSpec",
    "DefaultsSpec",
    "PriceSpec",
    "Project",
    "ProjectFile",
    "ProjectSpec",
    "ResourcesSpec",
    "TaskSpec",
    "load_project",
    "parse_project_file",
    "read_project_file",
]

"""coditect-core: run a software project's task graph on any LLM.

Layers, top to bottom (imports only point down; ``docs/ARCHITECTURE.md`` draws them):
:mod:`~coditect_core.cli` (the command) -> :mod:`~coditect_core.app` (its use cases) ->
:mod:`~coditect_core.project`, :mod:`~coditect_core.reporting`, :mod:`~coditect_core.store`,
:mod:`~coditect_core.orchestration` (the domain) -> :mod:`~coditect_core.llm_abstractions`
(talking to models) -> :mod:`~coditect_core.errors`, :mod:`~coditect_core.secrets`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

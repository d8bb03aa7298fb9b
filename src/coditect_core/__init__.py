"""coditect-core: run a software project's task graph on any LLM.

Floors, top to bottom (imports only point down): :mod:`coditect_core.cli`,
:mod:`coditect_core.orchestration`, :mod:`coditect_core.llm_abstractions`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

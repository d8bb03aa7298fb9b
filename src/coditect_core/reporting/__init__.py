"""Reports of a project's runs, read from its state store: Markdown, JSON and one HTML page.

:func:`build_report` reads the store (and the tasks as the project file defines them) into a
:class:`ReportData`; :func:`render_markdown`, :func:`render_json` and :func:`render_html` draw it.
The parts: :mod:`.model` (the records and their figures), :mod:`.build` (store -> records),
:mod:`.text` (Markdown, JSON), :mod:`.html` with :mod:`.svg` and :mod:`.assets` (the page),
:mod:`.fmt` (figures as text).

A cost the store does not know (no price for the model) stays unknown in every sum: shown as
``unknown``, or ``$x + unknown`` when only part of it is known; never as a made-up zero.
"""

from __future__ import annotations

from .build import build_report, dependency_levels
from .html import render_html
from .model import AgentRow, AttemptRow, Figures, ReportData, RunRow, TaskRow
from .text import render_json, render_markdown

__all__ = [
    "AgentRow",
    "AttemptRow",
    "Figures",
    "ReportData",
    "RunRow",
    "TaskRow",
    "build_report",
    "dependency_levels",
    "render_html",
    "render_json",
    "render_markdown",
]

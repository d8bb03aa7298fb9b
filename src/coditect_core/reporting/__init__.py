"""The one read model of a project's runs and tasks, read from its state store, and its
renderers: Markdown, JSON and one HTML page.

:func:`read_report` reads the store (and the tasks as the project file defines them) into a
:class:`ReportData`; :func:`render_markdown`, :func:`render_json` and :func:`render_html` draw it.
``coditect status``, ``tasks``, ``show`` and ``next`` read the same rows (through
:mod:`coditect_core.app.view`). The parts: :mod:`.model` (the rows and their figures),
:mod:`.build` (store records -> rows), :mod:`.text` (Markdown, JSON), :mod:`.html` with
:mod:`.svg` and :mod:`.assets` (the page), :mod:`.fmt` (the formatters, which the command uses
too).

A group of attempts is summed by a :class:`~coditect_core.orchestration.spend.Tally`. A cost the
store does not know (no price for the model) stays unknown in every sum: shown as ``unknown``,
or ``$x + unknown`` when only part of it is known (a known part of zero: ``unknown``); never as
a made-up zero. Blocked tasks are shown grouped by what blocks them (:class:`BlockedGroup`).
"""

from __future__ import annotations

from .build import StoreContents, dependency_levels, read_report, read_store, report_from
from .html import render_html
from .model import AgentRow, AttemptRow, BlockedGroup, ReportData, RunRow, TaskRow
from .text import render_json, render_markdown

__all__ = [
    "AgentRow",
    "AttemptRow",
    "BlockedGroup",
    "ReportData",
    "RunRow",
    "StoreContents",
    "TaskRow",
    "dependency_levels",
    "read_report",
    "read_store",
    "render_html",
    "render_json",
    "render_markdown",
    "report_from",
]

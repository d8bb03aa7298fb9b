"""The report as Markdown (for terminals and pull requests) and as JSON (for programs).

Both are safe to print: known secrets masked, and no raw control character (the Markdown shows
them as ``\\x1b``; the JSON keeps the exact text, with ``\\u`` escapes)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..orchestration.tool_loop import APPROVAL_TOOLSET
from . import fmt
from .model import BlockedGroup, ReportData, TaskRow

__all__ = ["blocked_line", "md_escape", "render_json", "render_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")
_PLAIN_ID = re.compile(r"[\w.-]+")
_ERROR_CHARS = 300


def md_escape(text: str) -> str:
    """``text`` safe inside a Markdown table cell: one line, special characters escaped (a
    title like ``<script>`` shows as text, never as HTML), control characters visible."""
    return _MD_SPECIAL.sub(r"\\\1", fmt.inert(" ".join(text.split())))


def _table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items()) or "none"


def _task_row(t: TaskRow) -> list[str]:
    f = t.figures
    agents = ", ".join(t.agents) if t.attempts else (t.agent or "—")
    return [
        f"`{t.task_id}`" if _PLAIN_ID.fullmatch(t.task_id) else md_escape(t.task_id),
        md_escape(t.title) or "—",
        t.status.replace("_", " ") + (" (truncated)" if t.truncated else ""),
        md_escape(agents),
        str(f.attempts),
        *(
            [fmt.duration(t.busy_s), fmt.count(f.prompt_tokens), fmt.count(f.completion_tokens),
             fmt.cost(f)]
            if f.attempts
            else ["—"] * 4
        ),
    ]  # fmt: skip


def render_markdown(report: ReportData) -> str:
    """Runs, agents and tasks as Markdown tables, then the problems (failures and blocks)."""
    t = report.totals
    scope = (
        f"run {report.run_id}" if report.run_id is not None else fmt.plural(len(report.runs), "run")
    )
    lines = [
        f"# Report: {md_escape(report.project)}",
        "",
        f"Generated {fmt.when(report.generated_at)} · {scope} · {len(report.tasks)} tasks "
        f"({_counts(report.status_counts)})"
        + (f" · Prices: {report.prices}" if report.prices else ""),
        "",
        f"**Attempts** {t.attempts} ({fmt.plural(report.retries, 'retry', 'retries')}, "
        f"{fmt.plural(report.fallbacks, 'fallback')}"
        + (f", {report.cached} cached" if report.cached else "")
        + ") · "
        f"**Wall time** {fmt.duration(report.wall_s)} · **Busy** {fmt.duration(report.busy_s)} · "
        f"**Tokens** {fmt.tokens(t.prompt_tokens, t.completion_tokens)} · "
        f"**Cost** {fmt.cost(t)}",
        "",
        *([_unknown_cost_note(report), ""] if t.cost_unknown else []),
        "## Runs",
        "",
    ]
    lines += _table(
        ["Run", "Started", "Wall time", "Status", "Tasks", "Attempts", "Tokens", "Cost"],
        [
            [
                str(r.run_id),
                fmt.when(r.started_at),
                fmt.duration(r.wall_s),
                r.status,
                md_escape(_counts(r.task_counts)),
                str(r.figures.attempts),
                fmt.count(r.figures.tokens),
                fmt.cost(r.figures),
            ]
            for r in report.runs
        ],
        {2, 5, 6},
    )
    lines += ["", "## Agents", ""]
    lines += _table(
        ["Agent", "Models", "Tasks", "Attempts", "OK", "Failed", "Busy", "Tokens in",
         "Tokens out", "Cost"],
        [
            [
                md_escape(a.agent),
                md_escape(", ".join(a.models)) or "—",
                str(a.tasks),
                str(a.figures.attempts),
                str(a.succeeded),
                str(a.failed),
                fmt.duration(a.busy_s),
                fmt.count(a.figures.prompt_tokens),
                fmt.count(a.figures.completion_tokens),
                fmt.cost(a.figures),
            ]
            for a in report.agents
        ],
        {2, 3, 4, 5, 6, 7, 8},
    )  # fmt: skip
    lines += ["", "## Tasks", ""]
    lines += _table(
        ["Task", "Title", "Status", "Agent", "Attempts", "Busy", "Tokens in", "Tokens out",
         "Cost"],
        [_task_row(task) for task in report.tasks],
        {4, 5, 6, 7},
    )  # fmt: skip
    lines += _loops_section(report)
    problems = [task for task in report.tasks if task.status in ("failed", "cancelled")]
    groups = report.blocked_groups()
    if problems or groups:
        lines += ["", "## Problems", ""]
        for task in problems:
            error, cut = fmt.clip(task.error or "no error recorded", _ERROR_CHARS)
            more = f" … ({cut} more characters)" if cut else ""
            lines.append(f"- {_md_id(task.task_id)} **{task.status}**: {md_escape(error)}{more}")
        for group in groups:  # once per cause, not once per blocked task
            lines.append(f"- {blocked_line(group, _md_id)}")
    typed = [task for task in report.tasks if task.value is not None]
    if typed:
        lines += [
            "",
            "## Values",
            "",
            "The validated outputs of the tasks with an output_schema.",
            "",
        ]
        for task in typed:
            text = json.dumps(task.value, ensure_ascii=False, indent=2).replace("```", "` ` `")
            lines += [f"### {_md_id(task.task_id)}", "", "```json", text, "```", ""]
    return fmt.inert(fmt.masked("\n".join(lines) + "\n"))


def _loops_section(report: ReportData) -> list[str]:
    """Agent loops: per agent and per task, the model turns that called tools and the tool
    calls (how many failed); nothing when no task ran a loop."""
    tasks = [t for t in report.tasks if t.turns or t.tool_calls]
    if not tasks:
        return []
    lines = ["", "## Agent loops", ""]

    def errors(row: Any) -> str:
        runs = [c for a in row.attempts for c in a.tool_runs if c.toolset != APPROVAL_TOOLSET]
        return str(sum(c.is_error for c in runs))

    lines += _table(
        ["Agent", "Tool turns", "Tool calls", "Errors"],
        [
            [md_escape(a.agent), str(a.turns), str(a.tool_calls), errors(a)]
            for a in report.agents
            if a.turns or a.tool_calls
        ],
        {1, 2, 3},
    )
    lines.append("")
    lines += _table(
        ["Task", "Agent", "Tool turns", "Tool calls", "Errors", "Tools used"],
        [
            [
                _md_id(t.task_id),
                md_escape(t.agent or "—"),
                str(t.turns),
                str(t.tool_calls),
                errors(t),
                md_escape(", ".join(dict.fromkeys(c.name for a in t.attempts for c in a.tool_runs)))
                or "—",
            ]
            for t in tasks
        ],
        {2, 3, 4},
    )
    return lines


def _unknown_cost_note(report: ReportData) -> str:
    """Said once, under the totals: how much of the cost is unknown, why, and what the cost
    figures then are."""
    t = report.totals
    n = t.cost_unknown
    what = (
        "the costs shown are the known part" if t.cost_status == "partial" else "no cost is known"
    )
    return (
        f"_Cost: {n} of {fmt.plural(t.attempts, 'attempt')} {'has' if n == 1 else 'have'} no "
        "known cost (no price for the model: set `price:` on the agent; or a failure the "
        f"provider may still bill): {what}._"
    )


def _md_id(task_id: str) -> str:
    return f"`{task_id}`" if _PLAIN_ID.fullmatch(task_id) else md_escape(task_id)


def blocked_line(group: BlockedGroup, show: Callable[[str], str] = str) -> str:
    """``**24 tasks blocked** by T04: T05, T06, ... (14 more)``, each id through ``show``."""
    n = len(group.tasks)
    by = ", ".join(show(tid) for tid in group.by) or "an upstream task (not recorded)"
    named, left = group.listed()
    more = f", … ({left} more)" if left else ""
    return f"**{fmt.plural(n, 'task')} blocked** by {by}: {', '.join(map(show, named))}{more}"


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def render_json(report: ReportData, *, indent: int | None = 2) -> str:
    """The JSON report (:meth:`ReportData.to_dict`), newline-terminated."""
    text = json.dumps(report.to_dict(), indent=indent, ensure_ascii=False) + "\n"
    return fmt.json_inert(fmt.masked(text, encode=_json_string))

"""The report as one self-contained HTML page: summary, task graph, timeline, tables, task details.

Inline CSS, JS and SVG only: the file opens offline and loads nothing. Every piece of text that
comes from a project or a run (titles, prompts, outputs, errors, agent names) goes through
:func:`html.escape`; the page's script never turns text into markup. The page holds no raw
control character (they show as ``\\x1b``) and no known secret. Long texts are cut to
``max_text`` characters (the JSON report has them whole). Built with plain string joins, which
keep a 500-task report to a fraction of a second.
"""

from __future__ import annotations

import json
from html import escape

from ..orchestration.spend import Tally
from . import fmt
from .assets import CSS, JS, STATUS_COLOURS
from .model import AgentRow, AttemptRow, ReportData, RunRow, TaskRow
from .svg import graph_is_vertical, graph_svg, timeline_svg

__all__ = ["render_html"]

_STATUS_ORDER = list(STATUS_COLOURS)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _pre(text: str, limit: int, cls: str = "") -> str:
    shown, cut = fmt.clip(text, limit)
    note = f'<p class="cut">… {cut:,} more characters not shown</p>' if cut else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<pre{klass}>{_e(shown)}</pre>{note}"


_TRUNCATED = (
    ' <span class="badge st-truncated" title="the reply was cut off at the agent\'s max_tokens">'
    "truncated</span>"
)


def _badge(status: str) -> str:
    return f'<span class="badge st-{_e(status)}">{_e(status.replace("_", " "))}</span>'


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _cards(report: ReportData) -> str:
    t = report.totals
    counts = report.status_counts
    done = counts.get("completed", 0)
    failed, blocked = counts.get("failed", 0), counts.get("blocked", 0)
    return (
        '<div class="cards">'
        + _card(f"{done} / {len(report.tasks)}", "tasks completed", "good" if done else "")
        + _card(str(failed), "failed", "bad" if failed else "")
        + _card(str(blocked), "blocked", "warn" if blocked else "")
        + _card(
            str(t.attempts),
            f"attempts · {fmt.plural(report.retries, 'retry', 'retries')} · "
            f"{fmt.plural(report.fallbacks, 'fallback')}"
            + (f" · {report.cached} cached" if report.cached else ""),
        )
        + _card(fmt.duration(report.wall_s), f"wall time · {fmt.plural(len(report.runs), 'run')}")
        + _card(fmt.duration(report.busy_s), "agent time (busy)")
        + _card(fmt.count(t.tokens), f"tokens · {fmt.count(t.prompt_tokens)} in")
        + _cost_card(t)
        + "</div>"
    )


def _cost_card(t: Tally) -> str:
    if t.cost_status == "partial":
        return _card(
            fmt.cost(t, detail=False),
            f"cost · {t.cost_unknown} attempt(s) with no known price",
            "warn",
        )
    return _card(fmt.cost(t), "cost (USD)")


def _legend(names: list[str], extra: str = "") -> str:
    items = "".join(f'<span><i class="st-{n}"></i>{n.replace("_", " ")}</span>' for n in names)
    return f'<div class="legend">{items}{extra}</div>'


TRIES_LEGEND = (
    '<span><b class="k-tries">\u00d73</b>attempts made, shown when more than one '
    "(retries, fallbacks, runs again)</span>"
)
"""The graph legend's entry for the attempt count on a node."""


def _graph_hint(report: ReportData, down: bool) -> str:
    if down:  # too deep for columns across the page: it runs downwards (svg.graph_is_vertical)
        return (
            f"rows are dependency levels, top to bottom ({report.levels} levels: too deep "
            "to fit the page as columns)"
        )
    return f"columns are dependency levels ({report.levels})"


def _figure_cells(row: RunRow | AgentRow) -> str:
    f = row.figures
    return (
        f'<td class="n">{f.attempts}</td><td class="n">{row.succeeded}</td>'
        f'<td class="n">{row.failed}</td><td class="n">{row.retries}</td>'
        f'<td class="n">{row.fallbacks}</td><td class="n">{_e(fmt.duration(row.busy_s))}</td>'
        f'<td class="n">{fmt.count(f.prompt_tokens)}</td>'
        f'<td class="n">{fmt.count(f.completion_tokens)}</td>'
        f'<td class="n">{_e(fmt.cost(f))}</td>'
    )


_FIGURE_HEADS = (
    '<th class="n">Attempts</th><th class="n">OK</th><th class="n">Failed</th>'
    '<th class="n">Retries</th><th class="n">Fallbacks</th><th class="n">Busy</th>'
    '<th class="n">Tokens in</th><th class="n">Tokens out</th><th class="n">Cost</th>'
)


def _runs_table(report: ReportData) -> str:
    rows = []
    for r in report.runs:
        counts = " ".join(
            f'<span class="mini st-{_e(s)}">{n} {_e(s.replace("_", " "))}</span>'
            for s, n in sorted(r.task_counts.items(), key=lambda kv: _rank(kv[0]))
        )
        rows.append(
            f"<tr><td>{r.run_id}</td><td class=nw>{_e(fmt.when(r.started_at))}</td>"
            f'<td class="n">{_e(fmt.duration(r.wall_s))}</td><td>{_badge(r.status)}</td>'
            f"<td>{counts or '—'}</td>{_figure_cells(r)}</tr>"
        )
    if not rows:
        return '<p class="empty">No runs recorded.</p>'
    return (
        '<table><thead><tr><th>Run</th><th>Started</th><th class="n">Wall time</th>'
        f"<th>Status</th><th>Tasks at its end</th>{_FIGURE_HEADS}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _agents_table(report: ReportData) -> str:
    rows = [
        f"<tr><td><b>{_e(a.agent)}</b></td><td>{_e(', '.join(a.models)) or '—'}</td>"
        f'<td class="n">{a.tasks}</td>{_figure_cells(a)}</tr>'
        for a in report.agents
    ]
    if not rows:
        return '<p class="empty">No agent has made an attempt yet.</p>'
    return (
        '<table><thead><tr><th>Agent</th><th>Models</th><th class="n">Tasks</th>'
        f"{_FIGURE_HEADS}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _loops_html(report: ReportData) -> str:
    """Agent loops: per task, its tool turns and tool calls (each call, its result shortened
    and escaped); nothing when no task ran a loop."""
    tasks = [t for t in report.tasks if t.turns or t.tool_calls]
    if not tasks:
        return ""
    rows = []
    for t in tasks:
        calls = "".join(
            f"<li><b>{_e(c.name)}</b>({_e(fmt.clip(c.arguments, 200)[0])}) → "
            f'<span class="{"err" if c.is_error else ""}">{_e(fmt.clip(c.result, 200)[0])}</span>'
            "</li>"
            for a in t.attempts
            for c in a.tool_runs
        )
        rows.append(
            f"<tr><td><b>{_e(t.task_id)}</b></td><td>{_e(t.agent or '—')}</td>"
            f'<td class="n">{t.turns}</td><td class="n">{t.tool_calls}</td>'
            f"<td><ul>{calls}</ul></td></tr>"
        )
    return (
        '<section id="loops"><h2>Agent loops <span class="hint">model turns that called tools, '
        "and the tool calls</span></h2><table><thead><tr><th>Task</th><th>Agent</th>"
        '<th class="n">Tool turns</th><th class="n">Tool calls</th><th>Calls</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _attempts_table(attempts: list[AttemptRow], limit: int) -> str:
    rows = []
    for a in attempts:
        error = _pre(a.error, limit, "err") if a.error else ""
        rows.append(
            f'<tr><td class="n">{a.number}</td><td class="kind-{a.kind}">{a.kind}</td>'
            f"<td>{a.run_id}</td><td>{_e(a.agent or '?')}</td><td>{_e(a.model or '—')}</td>"
            f"<td class=nw>{_e(fmt.when(a.started_at))}</td>"
            f'<td class="n">{_e(fmt.duration(a.duration_s))}</td><td>{_badge(a.status)}'
            f"{_TRUNCATED if a.truncated else ''}</td>"
            f'<td class="n">{fmt.count(a.prompt_tokens)}</td>'
            f'<td class="n">{fmt.count(a.completion_tokens)}</td>'
            f'<td class="n">{_e(fmt.cost(a.cost_usd))}</td><td>{error}</td></tr>'
        )
    return (
        '<table class="attempts"><thead><tr><th class="n">#</th><th>Kind</th><th>Run</th>'
        '<th>Agent</th><th>Model</th><th>Started</th><th class="n">Time</th><th>Status</th>'
        '<th class="n">In</th><th class="n">Out</th><th class="n">Cost</th><th>Error</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _links(ids: list[str]) -> str:
    return ", ".join(f'<a href="#task-{_e(i)}">{_e(i)}</a>' for i in ids) or "none"


def _task(t: TaskRow, dependents: list[str], limit: int) -> str:
    f = t.figures
    agents = ", ".join(t.agents) if t.attempts else (t.agent or "—")
    search = f"{t.task_id} {t.title}".lower()
    body = [
        f'<div class="meta"><span>level {t.level}</span>'
        f"<span>priority {_e(t.priority or '—')}</span>"
        f"<span>depends on: {_links(t.dependencies)}</span>"
        f"<span>needed by: {_links(dependents)}</span>"
        + ("" if t.defined else "<span>not in the project file any more</span>")
        + "</div>"
    ]
    if t.description:
        body.append(f"<h4>Description</h4>{_pre(t.description, limit)}")
    if t.error:
        body.append(f"<h4>Error</h4>{_pre(t.error, limit, 'err')}")
    if t.attempts:
        body.append(f"<h4>Attempts</h4>{_attempts_table(t.attempts, limit)}")
    if t.value is not None:
        body.append(
            "<h4>Value (validated against its output_schema)</h4>"
            + _pre(json.dumps(t.value, ensure_ascii=False, indent=2), limit)
        )
    if t.output is not None:
        body.append(
            f'<details class="more" open><summary>Output ({len(t.output):,} characters)'
            f"</summary>{_pre(t.output, limit)}</details>"
        )
    if t.prompt:
        body.append(
            "<details class=\"more\"><summary>Prompt (the task's part; its dependencies' "
            f"outputs are added at run time)</summary>{_pre(t.prompt, limit)}</details>"
        )
    if t.history:
        items = "".join(
            f"<li>{_e(fmt.when(e.at))} · {_badge(e.status)} {_e(e.note or '')}</li>"
            for e in t.history
        )
        body.append(f'<details class="more"><summary>History</summary><ul>{items}</ul></details>')
    return (
        f'<details class="task st-{_e(t.status)}" id="task-{_e(t.task_id)}" '
        f'data-status="{_e(t.status)}" data-search="{_e(search)}"><summary>'
        f'<span class="tid">{_e(t.task_id)}</span><span class="title">{_e(t.title)}</span>'
        f"<span>{_badge(t.status)}{_TRUNCATED if t.truncated else ''}</span>"
        f'<span class="ag">{_e(agents)}</span>'
        f'<span class="n">{f.attempts}</span>'
        f'<span class="n">{_e(fmt.duration(t.busy_s)) if f.attempts else "—"}</span>'
        f'<span class="n">{fmt.count(f.tokens) if f.attempts else "—"}</span>'
        f'<span class="n">{_e(fmt.cost(f, detail=False)) if f.attempts else "—"}</span>'
        f'<span class="n">{_e(fmt.clock(t.finished_at))}</span>'
        f'</summary><div class="body st-{_e(t.status)}">{"".join(body)}</div></details>'
    )


def _tasks_section(report: ReportData, limit: int) -> str:
    dependents: dict[str, list[str]] = {}
    for t in report.tasks:
        for dep in t.dependencies:
            dependents.setdefault(dep, []).append(t.task_id)
    statuses = sorted(report.status_counts, key=lambda s: (_rank(s), s))
    chips = "".join(
        f'<button type="button" class="chip on st-{_e(s)}" data-status="{_e(s)}">'
        f"{_e(s.replace('_', ' '))} {report.status_counts[s]}</button>"
        for s in statuses
    )
    tools = (
        '<div class="tools"><input id="tasks-filter" type="search" '
        'placeholder="Filter by task id or title" aria-label="filter tasks">'
        f'{chips}<button type="button" id="open-all">open all</button>'
        '<button type="button" id="close-all">close all</button>'
        f'<span class="count"><span id="shown">{len(report.tasks)}</span> of '
        f"{len(report.tasks)} shown</span></div>"
    )
    head = (
        '<div class="tasks-head"><span>Task</span><span>Title</span><span>Status</span>'
        '<span>Agent</span><span class="n">Attempts</span><span class="n">Busy</span>'
        '<span class="n">Tokens</span><span class="n">Cost</span>'
        '<span class="n">Finished</span></div>'
    )
    items = "".join(_task(t, dependents.get(t.task_id, []), limit) for t in report.tasks)
    return tools + head + items


_ERROR = 300
"""The problems list shows this many characters of an error (the task's details: all)."""


def _problems(report: ReportData) -> str:
    """The failed and cancelled tasks, each with its error on one line, then the blocked ones
    grouped by what blocks them (once per cause); nothing when there is no problem."""
    items = []
    for t in report.tasks:
        if t.status in ("failed", "cancelled"):
            error, cut = fmt.clip(" ".join((t.error or "no error recorded").split()), _ERROR)
            more = f" … ({cut:,} more characters)" if cut else ""
            items.append(f"<li>{_links([t.task_id])} {_badge(t.status)} {_e(error)}{more}</li>")
    for group in report.blocked_groups():
        n = len(group.tasks)
        named, left = group.listed()
        shown = _links(named) + (f", … ({left} more)" if left else "")
        by = _links(group.by) if group.by else "an upstream task (not recorded)"
        items.append(
            f"<li>{_badge('blocked')} {_e(fmt.plural(n, 'task'))} blocked by {by}: {shown}</li>"
        )
    if not items:
        return ""
    return f'<section id="problems"><h2>Problems</h2><ul>{"".join(items)}</ul></section>'


def _rank(status: str) -> int:
    return _STATUS_ORDER.index(status) if status in _STATUS_ORDER else len(_STATUS_ORDER)


def render_html(report: ReportData, *, max_text: int = 20_000) -> str:
    """The whole report as one HTML document (a ``str``; write it as UTF-8)."""
    scope = f"run {report.run_id}" if report.run_id is not None else "all runs"
    task_states = [s for s in _STATUS_ORDER if s in report.status_counts and s != "succeeded"]
    attempt_states = sorted({a.status for a in report.attempts}, key=_rank)
    attempt_legend = _legend(
        attempt_states,
        '<span><i class="k-retry"></i>retry</span>'
        '<span><i class="k-fallback"></i>fallback (arrow from the attempt it replaced)</span>',
    )
    down = graph_is_vertical(report)
    title = f"coditect report · {report.project}"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="coditect-core">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(report.project)}<small>{_e(scope)} · generated "
        f"{_e(fmt.when(report.generated_at))}"
        + (f" · prices: {_e(report.prices)}" if report.prices else "")
        + "</small></h1><nav>"
        '<a href="#graph">Task graph</a><a href="#timeline">Timeline</a>'
        '<a href="#runs">Runs</a><a href="#agents">Agents</a><a href="#tasks">Tasks</a>'
        "</nav></header><main>"
        + _cards(report)
        + _problems(report)
        + '<section id="graph"><h2>Task graph <span class="hint">'
        + _graph_hint(report, down)
        + "; hover a task to trace its edges, click to open it"
        f"</span></h2>{_legend(task_states, TRIES_LEGEND)}"
        f'<div class="scroll{" tall" if down else ""}">{graph_svg(report)}</div></section>'
        '<section id="timeline"><h2>Timeline <span class="hint">every attempt on its '
        "agent's lane; idle time between runs is cut out</span></h2>"
        f'{attempt_legend}<div class="scroll">{timeline_svg(report)}</div></section>'
        f'<section id="runs"><h2>Runs</h2>{_runs_table(report)}</section>'
        f'<section id="agents"><h2>Agents</h2>{_agents_table(report)}</section>'
        + _loops_html(report)
        + f'<section id="tasks"><h2>Tasks <span class="hint">click a task for its attempts, '
        f"output, errors and prompt</span></h2>{_tasks_section(report, max_text)}</section>"
        "</main><footer>Made by coditect-core from the project's state database. This file "
        "is self-contained: it loads nothing from the network.</footer>"
        f"<script>{JS}</script></body></html>\n"
    )
    return fmt.inert(fmt.masked(page, encode=lambda s: escape(s, quote=True)))

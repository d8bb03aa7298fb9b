"""The two pictures of the HTML report, as inline SVG: the task graph and the attempt timeline.

The graph puts each task in the column of its dependency level (a level taller than
``max_rows`` tasks wraps onto more columns), orders each column by where its dependencies sit
(fewer crossings), and draws an edge from every dependency to its dependent. A deep graph, whose
columns would be wider than the page (:data:`FIT_WIDTH`), runs downwards instead: each level a
row, centred and wrapped to that width, its edges short vertical curves. The timeline (a
Gantt chart) gives each agent a lane, split into rows so that concurrent attempts never overlap;
stretches of time when no run was going are cut out of the axis and marked. Every text is
escaped; every shape links to its task's details (``#task-ID``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from . import fmt
from .model import AttemptRow, ReportData, RunRow, TaskRow

__all__ = ["FIT_WIDTH", "graph_is_vertical", "graph_svg", "timeline_svg"]

NODE_H, ROW_GAP = 22, 6
COL_GAP, WRAP_GAP = 56, 12
CHAR_W = 7.2  # px per character of an 11px bold label, roughly
V_LEFT, V_LEVEL_GAP = 92, 40  # rows: room for the level labels; the gap between two levels

FIT_WIDTH = 1280
"""The graph's width when it runs downwards: the report's content width in a 1,400 px window."""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _label(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _anchor(task_id: str) -> str:
    return f"#task-{_e(task_id)}"


# ----------------------------------------------------------------------------- graph


def _mean_position(task: TaskRow, position: dict[str, float]) -> float:
    deps = [position[d] for d in task.dependencies if d in position]
    return sum(deps) / len(deps) if deps else 0.5


def _columns(tasks: list[TaskRow]) -> list[list[TaskRow]]:
    """Tasks per level, each level ordered by the mean position of its dependencies."""
    levels: dict[int, list[TaskRow]] = {}
    for t in tasks:
        levels.setdefault(t.level, []).append(t)
    position: dict[str, float] = {}
    out = []
    for level in sorted(levels):
        column = levels[level]
        if level > 0:
            column = sorted(column, key=lambda t: _mean_position(t, position))
        for i, t in enumerate(column):
            position[t.task_id] = (i + 0.5) / len(column)
        out.append(column)
    return out


def graph_is_vertical(report: ReportData, *, max_rows: int = 30) -> bool:
    """Whether the graph runs downwards: when its levels as columns would be wider than
    :data:`FIT_WIDTH` (a deep graph: about 9 levels or more)."""
    columns = _columns(report.tasks)
    if not columns:
        return False
    return _across(columns, _node_width(report)[1], max_rows)[2] > FIT_WIDTH


def _node_width(report: ReportData) -> tuple[int, int]:
    """The characters of a node's label, and its width in pixels (room for an attempt count)."""
    longest = max(len(t.task_id) for t in report.tasks)
    chars = min(max(longest, 4), 18)
    return chars, round(chars * CHAR_W + 40)


def _across(
    columns: list[list[TaskRow]], node_w: int, max_rows: int
) -> tuple[dict[str, tuple[float, float]], list[str], float, float]:
    """Levels as columns, left to right (a level taller than ``max_rows`` wraps onto more)."""
    step = NODE_H + ROW_GAP
    rows = min(max(len(c) for c in columns), max_rows)
    top = 26
    where: dict[str, tuple[float, float]] = {}
    heads: list[str] = []
    x = 8.0
    for level, column in enumerate(columns):
        chunks = [column[i : i + max_rows] for i in range(0, len(column), max_rows)]
        span = len(chunks) * node_w + (len(chunks) - 1) * WRAP_GAP
        heads.append(
            f'<text class="lvl" x="{x + span / 2:.0f}" y="14">level {level} · {len(column)}</text>'
        )
        for chunk in chunks:
            y0 = top + (rows - len(chunk)) * step / 2
            for i, t in enumerate(chunk):
                where[t.task_id] = (x, y0 + i * step)
            x += node_w + WRAP_GAP
        x += COL_GAP - WRAP_GAP
    return where, heads, x - COL_GAP + 16, top + rows * step + 8


def _down(
    columns: list[list[TaskRow]], node_w: int
) -> tuple[dict[str, tuple[float, float]], list[str], float, float]:
    """Levels as rows, top to bottom, each centred in :data:`FIT_WIDTH` (a level wider than
    the page wraps onto more rows)."""
    usable = FIT_WIDTH - V_LEFT - 8
    per_row = max(1, int((usable + WRAP_GAP) // (node_w + WRAP_GAP)))
    where: dict[str, tuple[float, float]] = {}
    heads: list[str] = []
    y = 10.0
    for level, column in enumerate(columns):
        heads.append(
            f'<text class="lvl v" x="{V_LEFT - 10}" y="{y + 15:.0f}">'
            f"level {level} · {len(column)}</text>"
        )
        for start in range(0, len(column), per_row):
            chunk = column[start : start + per_row]
            span = len(chunk) * node_w + (len(chunk) - 1) * WRAP_GAP
            x0 = V_LEFT + (usable - span) / 2
            for i, t in enumerate(chunk):
                where[t.task_id] = (x0 + i * (node_w + WRAP_GAP), y)
            y += NODE_H + ROW_GAP
        y += V_LEVEL_GAP - ROW_GAP
    return where, heads, float(FIT_WIDTH), y - V_LEVEL_GAP + NODE_H / 2


def _edge(dep: str, task_id: str, a: tuple[float, float], b: tuple[float, float], *,
          node_w: int, down: bool, bad: str) -> str:  # fmt: skip
    (x1, y1), (x2, y2) = a, b
    skip = y2 - y1 - NODE_H
    if down and skip > V_LEVEL_GAP + NODE_H / 2:  # past a level: an arc beside its nodes
        x1, x2, y1, y2 = x1 + node_w, x2 + node_w, y1 + NODE_H / 2, y2 + NODE_H / 2
        side = max(x1, x2) + min(18 + skip / 10, 100)
        c1, c2 = f"{side:.0f},{y1:.0f}", f"{side:.0f},{y2:.0f}"
        bad += " long"
    elif down:  # from the bottom of the dependency to the top of its dependent
        x1, x2, y1 = x1 + node_w / 2, x2 + node_w / 2, y1 + NODE_H
        bend = max((y2 - y1) / 2, 14)
        c1, c2 = f"{x1:.0f},{y1 + bend:.0f}", f"{x2:.0f},{y2 - bend:.0f}"
    else:  # from the right of the dependency to the left of its dependent
        x1, y1, y2 = x1 + node_w, y1 + NODE_H / 2, y2 + NODE_H / 2
        bend = max((x2 - x1) / 2, 24)
        c1, c2 = f"{x1 + bend:.0f},{y1:.0f}", f"{x2 - bend:.0f},{y2:.0f}"
    d = f"M{x1:.0f},{y1:.0f} C{c1} {c2} {x2:.0f},{y2:.0f}"
    return f'<path class="edge{bad}" data-from="{_e(dep)}" data-to="{_e(task_id)}" d="{d}"/>'


def graph_svg(report: ReportData, *, max_rows: int = 30) -> str:
    """The task graph, nodes coloured by status: levels as columns, or, when those would be
    wider than :data:`FIT_WIDTH`, as rows that fit it (see :func:`graph_is_vertical`)."""
    columns = _columns(report.tasks)
    if not columns:
        return '<p class="empty">No tasks.</p>'
    chars, node_w = _node_width(report)
    where, heads, width, height = _across(columns, node_w, max_rows)
    down = width > FIT_WIDTH  # too wide for the page: run downwards (graph_is_vertical)
    if down:
        where, heads, width, height = _down(columns, node_w)
    failed = {t.task_id for t in report.tasks if t.status in ("failed", "blocked", "cancelled")}
    edges: list[str] = []
    parts: list[str] = []
    for t in report.tasks:
        if t.task_id not in where:
            continue
        for dep in t.dependencies:
            if dep in where:
                bad = " bad" if dep in failed else ""  # (a set: a lookup per edge, not a scan)
                edges.append(
                    _edge(dep, t.task_id, where[dep], where[t.task_id], node_w=node_w,
                          down=down, bad=bad)
                )  # fmt: skip
    for t in report.tasks:
        if t.task_id not in where:
            continue
        nx, ny = where[t.task_id]
        n = len(t.attempts)
        tries = f'<text class="tries" x="{nx + node_w - 6:.0f}" y="{ny + 15:.0f}">\u00d7{n}</text>'
        label_chars = chars + (2 if n == 1 else 0)
        tip = f"{t.task_id}: {t.title} ({t.status}, {n} attempt{'s' if n != 1 else ''})"
        parts.append(
            f'<a href="{_anchor(t.task_id)}" class="node st-{_e(t.status)}" '
            f'data-id="{_e(t.task_id)}"><title>{_e(tip)}</title>'
            f'<rect x="{nx:.0f}" y="{ny:.0f}" width="{node_w}" height="{NODE_H}" rx="5"/>'
            f'<text x="{nx + 8:.0f}" y="{ny + 15:.0f}">{_e(_label(t.task_id, label_chars))}'
            f"</text>{tries if n > 1 else ''}</a>"
        )
    classes = "graph" + (" many" if len(edges) > 300 else "") + (" down" if down else "")
    return (
        f'<svg id="graph-svg" class="{classes}" data-layout="{"rows" if down else "columns"}" '
        f'xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="task graph">{"".join(heads)}<g class="edges">'
        f'{"".join(edges)}</g><g class="nodes">{"".join(parts)}</g></svg>'
    )


# ----------------------------------------------------------------------------- timeline

LEFT, TOP, ROW_H, BAR_H, LANE_GAP = 168, 46, 18, 12, 8
BREAK_W = 34
_STEPS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
          7200, 14400, 21600, 43200, 86400)  # fmt: skip


@dataclass(slots=True)
class _Segment:
    start: float
    end: float
    x: float = 0.0

    @property
    def length(self) -> float:
        return max(self.end - self.start, 1e-6)


def _segments(runs: Iterable[RunRow], attempts: list[AttemptRow]) -> list[_Segment]:
    """Stretches of time worth drawing: runs and attempts, merged unless a long idle gap
    separates them (a gap over a quarter of the busy time, and over 20 s, is cut out)."""
    spans = [(r.started_at, r.started_at + r.wall_s) for r in runs]
    spans += [(a.started_at, a.started_at + a.duration_s) for a in attempts]
    if not spans:
        return []
    spans.sort()
    busy = sum(max(e - s, 0.0) for s, e in spans) or 1.0
    limit = max(20.0, busy / 4)
    merged = [_Segment(*spans[0])]
    for s, e in spans[1:]:
        last = merged[-1]
        if s - last.end > limit:
            merged.append(_Segment(s, e))
        else:
            last.end = max(last.end, e)
    return merged


def _pack(attempts: list[AttemptRow]) -> list[list[AttemptRow]]:
    """Attempts in rows, first fit by start time, so that none overlaps another in its row."""
    rows: list[list[AttemptRow]] = []
    ends: list[float] = []
    for a in sorted(attempts, key=lambda a: (a.started_at, a.attempt_id)):
        for i, end in enumerate(ends):
            if a.started_at >= end - 1e-9:
                rows[i].append(a)
                ends[i] = a.started_at + a.duration_s
                break
        else:
            rows.append([a])
            ends.append(a.started_at + a.duration_s)
    return rows


def _short(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _bar_tip(a: AttemptRow, title: str) -> str:
    lines = [
        f"{a.task_id}: {title}" if title else a.task_id,
        f"attempt {a.number} ({a.kind}) · {a.agent or '?'} · {a.model or 'model unknown'}",
        f"{a.status} · {fmt.duration(a.duration_s)} from {fmt.when(a.started_at)}",
        f"tokens {fmt.tokens(a.prompt_tokens, a.completion_tokens)} · cost {fmt.cost(a.cost_usd)}",
    ]
    if a.error:
        lines.append("error: " + _short(a.error))
    return "\n".join(lines)


def timeline_svg(report: ReportData, *, min_width: int = 1190, max_width: int = 5200) -> str:
    """Every attempt on its agent's lane; retries dashed, fallbacks outlined and linked."""
    attempts = report.attempts
    if not attempts:
        return '<p class="empty">No attempts recorded yet.</p>'
    lanes: dict[str, list[list[AttemptRow]]] = {}
    for agent in sorted({a.agent or "?" for a in attempts}):
        lanes[agent] = _pack([a for a in attempts if (a.agent or "?") == agent])
    densest = max(len(row) for rows in lanes.values() for row in rows)
    plot_w = float(min(max(min_width - LEFT, densest * 9), max_width))
    segments = _segments(report.runs, attempts)
    total = sum(s.length for s in segments)
    pps = (plot_w - BREAK_W * (len(segments) - 1)) / total
    x = float(LEFT)
    for seg in segments:
        seg.x = x
        x += seg.length * pps + BREAK_W

    def to_x(ts: float) -> float:
        for seg in segments:
            if ts <= seg.end + 1e-9:
                return seg.x + max(ts - seg.start, 0.0) * pps
        last = segments[-1]
        return last.x + last.length * pps

    n_rows = sum(len(rows) for rows in lanes.values())
    height = TOP + n_rows * ROW_H + LANE_GAP * len(lanes) + 10
    width = LEFT + plot_w + 12
    out: list[str] = []
    # axis: ticks per segment, a break mark between segments
    for i, seg in enumerate(segments):
        seg_w = seg.length * pps
        step = next((s for s in _STEPS if s * pps >= 72), _STEPS[-1])
        out.append(f'<text class="clock" x="{seg.x:.1f}" y="12">{_e(fmt.when(seg.start))}</text>')
        k = 0
        while k * step <= seg.length + 1e-9:
            tx = seg.x + k * step * pps
            out.append(
                f'<line class="tick" x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP - 6}" '
                f'y2="{height - 6}"/><text class="tl" x="{tx + 3:.1f}" y="{TOP - 9}">'
                f"{'+' + fmt.duration(k * step) if k else '0'}</text>"
            )
            k += 1
        if i + 1 < len(segments):
            gap = segments[i + 1].start - seg.end
            bx = seg.x + seg_w + BREAK_W / 2
            out.append(
                f'<g class="brk"><title>{_e(fmt.duration(gap))} with no run</title>'
                f'<line x1="{bx - 4:.1f}" x2="{bx + 4:.1f}" y1="{TOP - 2}" y2="{height - 10}"/>'
                f'<text x="{bx:.1f}" y="{height - 1}">{_e(fmt.duration(gap))}</text></g>'
            )
    for run in report.runs:
        rx, rw = (
            to_x(run.started_at),
            max(to_x(run.started_at + run.wall_s) - to_x(run.started_at), 2),
        )
        out.append(
            f'<g class="run r-{_e(run.status)}"><title>run {run.run_id}: {_e(run.status)}, '
            f"{_e(fmt.duration(run.wall_s))}</title>"
            f'<rect x="{rx:.1f}" y="17" width="{rw:.1f}" height="9" rx="2"/>'
            f'<text x="{rx + 3:.1f}" y="25">run {run.run_id}</text></g>'
        )
    titles = {t.task_id: t.title for t in report.tasks}
    ends: dict[int, tuple[float, float]] = {}
    bars: list[str] = []
    y = float(TOP)
    for agent, rows in lanes.items():
        lane_h = len(rows) * ROW_H
        out.append(
            f'<rect class="lane" x="0" y="{y - 3:.1f}" width="{width:.0f}" '
            f'height="{lane_h + 4:.0f}"/><text class="agent" x="8" y="{y + lane_h / 2 + 4:.1f}">'
            f"{_e(_label(agent, 20))}</text>"
        )
        for row in rows:
            for a in row:
                bx = to_x(a.started_at)
                bw = max(to_x(a.started_at + a.duration_s) - bx, 2.0)
                ends[a.attempt_id] = (bx + bw, y + BAR_H / 2)
                label = ""
                if bw > 7 * len(a.task_id) + 8:
                    label = (
                        f'<text class="bl" x="{bx + 4:.1f}" y="{y + 10:.1f}">{_e(a.task_id)}</text>'
                    )
                tip = _e(_bar_tip(a, titles.get(a.task_id, "")))
                bars.append(
                    f'<a href="{_anchor(a.task_id)}" class="bar a-{_e(a.status)} k-{a.kind}" '
                    f'data-task="{_e(a.task_id)}"><title>{tip}'
                    f'</title><rect x="{bx:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{BAR_H}" '
                    f'rx="2"/>{label}</a>'
                )
            y += ROW_H
        y += LANE_GAP
    links: list[str] = []
    for t in report.tasks:
        for prev, a in zip(t.attempts, t.attempts[1:], strict=False):
            if a.kind != "fallback" or prev.attempt_id not in ends or a.attempt_id not in ends:
                continue
            x1, y1 = ends[prev.attempt_id]
            x2, y2 = to_x(a.started_at), ends[a.attempt_id][1]
            links.append(
                f'<path class="fb-link" marker-end="url(#arrow)" '
                f'd="M{x1:.1f},{y1:.1f} C{x1 + 16:.1f},{y1:.1f} {x2 - 16:.1f},{y2:.1f} '
                f'{x2:.1f},{y2:.1f}"/>'
            )
    defs = (
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/>'
        "</marker></defs>"
    )
    return (
        f'<svg id="timeline-svg" class="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="timeline of attempts">{defs}{"".join(out)}'
        f'<g class="bars">{"".join(bars)}</g><g class="links">{"".join(links)}</g></svg>'
    )

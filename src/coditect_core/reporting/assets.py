"""The HTML report's inline style sheet and script (no CDN, no network: the file stands alone).

The script only adds comfort (open a task from a link, filter the task list, trace a task's
edges in the graph); without it every part of the report is still there and readable. It never
reads report text into HTML: task text reaches the page escaped, in the markup.
"""

from __future__ import annotations

__all__ = ["CSS", "JS", "STATUS_COLOURS"]

#: Status -> colour, for tasks and attempts alike.
STATUS_COLOURS = {
    "completed": "#2f9e62",
    "succeeded": "#2f9e62",
    "failed": "#d64545",
    "blocked": "#e8912d",
    "cancelled": "#8c939d",
    "interrupted": "#5f6670",
    "in_progress": "#3b7dd8",
    "running": "#3b7dd8",
    "awaiting_human": "#8e5bd0",
    "pending": "#c3c9d1",
}

_STATUS_CSS = "\n".join(
    f".st-{name},.a-{name}{{--c:{colour}}}" for name, colour in STATUS_COLOURS.items()
)

CSS = (
    """
:root{--fg:#1d232b;--muted:#66707c;--line:#e3e7ec;--bg:#f6f8fa;--card:#fff;--accent:#3b5bdb;
--fb:#7c3aed;--c:#c3c9d1;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg)}
header{background:#1f2937;color:#f3f4f6;padding:14px 28px 12px}
header h1{margin:0;font-size:20px;font-weight:600;letter-spacing:.2px}
header h1 small{font-weight:400;color:#9ca3af;font-size:13px;margin-left:10px}
header nav{margin-top:6px;font-size:13px}
header nav a{color:#c7d2fe;margin-right:16px;text-decoration:none}
main{padding:16px 28px 40px;max-width:1800px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 16px 14px;margin:0 0 16px}
section h2{font-size:15px;margin:0 0 8px;display:flex;gap:14px;align-items:baseline}
section h2 .hint{font-weight:400;color:var(--muted);font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;
margin:0 0 16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.card b{display:block;font-size:19px;font-weight:600}
.card span{color:var(--muted);font-size:12px}
.card.bad b{color:#c53030}.card.warn b{color:#c2410c}.card.good b{color:#237a4b}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;color:var(--muted);margin:0 0 6px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;background:var(--c);
vertical-align:-1px;margin-right:4px}
.legend i.k-retry{background:#fff;border:1.5px dashed #333}
.legend i.k-fallback{background:#fff;border:2px solid var(--fb)}
.legend b.k-tries{font-weight:400;font-size:11px;color:#fff;background:#64748b;
border-radius:3px;padding:0 4px;margin-right:4px}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px;
background:#fcfdfe}
.scroll.tall{max-height:1800px}
svg{display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
svg .lvl{fill:var(--muted);text-anchor:middle;font-size:11px}
svg .lvl.v{text-anchor:end}
svg .node rect{fill:var(--c);stroke:rgba(0,0,0,.18)}
svg .node text{fill:#fff;font-weight:600;pointer-events:none}
svg .node.st-pending text{fill:#374151}
svg .node .tries{text-anchor:end;font-weight:400;opacity:.9}
svg .edge{fill:none;stroke:#9aa5b1;stroke-width:1;opacity:.55}
svg.many .edge{opacity:.22}
svg .edge.bad{stroke:#e0a1a1;stroke-dasharray:3 2}
svg.focus .edge{opacity:.08}svg.focus .node{opacity:.35}
svg.focus .edge.hl{opacity:1;stroke:var(--accent);stroke-width:2}
svg.focus .node.hl{opacity:1}
svg .node:hover rect{stroke:#111;stroke-width:2}
svg .lane{fill:#f3f5f8}
svg .agent{fill:var(--fg);font-weight:600;font-size:12px}
svg .tick{stroke:#e6e9ee}svg .tl,svg .clock{fill:var(--muted)}
svg .run rect{fill:#dbe4ff}svg .run.r-failed rect{fill:#ffe1e1}
svg .run.r-interrupted rect{fill:#eceef1}svg .run text{fill:#374151;font-size:9px}
svg .brk line{stroke:#9aa5b1;stroke-width:2;stroke-dasharray:4 3}
svg .brk text{fill:var(--muted);text-anchor:middle;font-size:9px}
svg .bar rect{fill:var(--c)}
svg .bar.k-retry rect{stroke:#1f2937;stroke-width:1.4;stroke-dasharray:3 2}
svg .bar.k-fallback rect{stroke:var(--fb);stroke-width:2.2}
svg .bar:hover rect{stroke:#111;stroke-width:2}
svg .bar .bl{fill:#fff;font-size:10px;pointer-events:none}
svg .fb-link{fill:none;stroke:var(--fb);stroke-width:1.5}
svg .arrowhead{fill:var(--fb)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;background:#fafbfc}
td.nw{white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 7px;border-radius:9px;background:var(--c);color:#fff;
font-size:11.5px;font-weight:600;line-height:18px;white-space:nowrap}
.badge.st-pending{color:#374151}
.badge.st-truncated{--c:#b45309}
.mini{color:var(--c);font-weight:600;white-space:nowrap;margin-right:8px}
.mini.st-pending{color:#6b7280}
.kind-retry{color:#374151;font-weight:600}.kind-fallback{color:var(--fb);font-weight:600}
.tools{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:0 0 10px}
.tools input{flex:0 1 320px;padding:5px 9px;border:1px solid #cfd6de;border-radius:6px;
font:inherit}
.tools button{font:inherit;font-size:12px;border:1px solid #cfd6de;background:#fff;
border-radius:14px;padding:2px 10px;cursor:pointer}
.tools button.chip{border-color:var(--c)}
.tools button.chip.on{background:var(--c);color:#fff}
.tools button.chip.st-pending.on{color:#374151}
.tools .count{color:var(--muted);font-size:12px;margin-left:auto}
.tasks-head,details.task>summary{display:grid;
grid-template-columns:minmax(90px,10rem) minmax(180px,1fr) 8.5rem 9rem 4.5rem 5.5rem 6rem 6rem 7rem;
gap:8px;align-items:center;padding:5px 8px}
.tasks-head{font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line)}
.tasks-head span.n,summary span.n{text-align:right;font-variant-numeric:tabular-nums}
details.task{border-bottom:1px solid var(--line)}
details.task>summary{cursor:pointer;list-style:none}
details.task>summary::-webkit-details-marker{display:none}
details.task>summary:hover{background:#f5f7fa}
details.task[open]>summary{background:#eef2ff}
details.task.flash>summary{background:#fff3bf}
summary .tid{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
summary .title{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
summary .ag{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#374151}
.body{padding:6px 14px 14px 22px;border-left:3px solid var(--c);margin:0 0 8px 8px}
.body h4{margin:12px 0 4px;font-size:12.5px;color:#374151}
.body .meta{display:flex;flex-wrap:wrap;gap:4px 18px;color:var(--muted);font-size:12.5px}
.body .meta a{color:var(--accent)}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:8px 10px;
margin:0;max-height:360px;overflow:auto;white-space:pre-wrap;word-break:break-word;
font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace}
pre.err{background:#fff5f5;border-color:#f5c2c2;color:#8a1c1c}
details.more>summary{cursor:pointer;color:var(--accent);font-size:12.5px;margin-top:10px}
.cut{color:var(--muted);font-size:12px}
.empty{color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
"""
    + _STATUS_CSS
)

JS = """
(function () {
  "use strict";
  var d = document;
  function openFromHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (id.indexOf("task-") !== 0) return;
    var el = d.getElementById(id);
    if (!el || el.tagName !== "DETAILS") return;
    el.hidden = false;
    el.open = true;
    el.classList.add("flash");
    setTimeout(function () { el.classList.remove("flash"); }, 1600);
  }
  window.addEventListener("hashchange", openFromHash);
  openFromHash();

  var graph = d.getElementById("graph-svg");
  if (graph) {
    var byNode = {};
    graph.querySelectorAll(".edge").forEach(function (e) {
      (byNode[e.dataset.from] = byNode[e.dataset.from] || []).push(e);
      (byNode[e.dataset.to] = byNode[e.dataset.to] || []).push(e);
    });
    var nodes = {};
    graph.querySelectorAll(".node").forEach(function (n) { nodes[n.dataset.id] = n; });
    var lit = [];
    function clear() {
      lit.forEach(function (el) { el.classList.remove("hl"); });
      lit = [];
      graph.classList.remove("focus");
    }
    graph.addEventListener("mouseover", function (ev) {
      var node = ev.target.closest(".node");
      if (!node) return;
      clear();
      graph.classList.add("focus");
      node.classList.add("hl");
      lit.push(node);
      (byNode[node.dataset.id] || []).forEach(function (e) {
        e.classList.add("hl");
        lit.push(e);
        [e.dataset.from, e.dataset.to].forEach(function (id) {
          if (nodes[id]) { nodes[id].classList.add("hl"); lit.push(nodes[id]); }
        });
      });
    });
    graph.addEventListener("mouseleave", clear);
  }

  var input = d.getElementById("tasks-filter");
  var tasks = Array.prototype.slice.call(d.querySelectorAll("details.task"));
  var chips = Array.prototype.slice.call(d.querySelectorAll("button.chip"));
  var shown = d.getElementById("shown");
  function apply() {
    var q = (input ? input.value : "").trim().toLowerCase();
    var on = {};
    chips.forEach(function (c) { on[c.dataset.status] = c.classList.contains("on"); });
    var n = 0;
    tasks.forEach(function (t) {
      var ok = on[t.dataset.status] !== false && (!q || t.dataset.search.indexOf(q) >= 0);
      t.hidden = !ok;
      if (ok) n++;
    });
    if (shown) shown.textContent = String(n);
  }
  if (input) input.addEventListener("input", apply);
  chips.forEach(function (c) {
    c.addEventListener("click", function () { c.classList.toggle("on"); apply(); });
  });
  var all = d.getElementById("open-all"), none = d.getElementById("close-all");
  if (all) all.addEventListener("click", function () {
    tasks.forEach(function (t) { if (!t.hidden) t.open = true; });
  });
  if (none) none.addEventListener("click", function () {
    tasks.forEach(function (t) { t.open = false; });
  });
  d.documentElement.dataset.ready = "1";
})();
"""

"""The HTML report of a deep graph (issue 18): 60 tasks on 19 levels. As columns it would be
three times the page's width; it runs downwards instead, fits a 1,400 px window, draws edges
that skip levels as arcs beside the nodes, and its legend explains the ``xN`` badge
(the attempt count).

The project runs through the real ``coditect`` (a failing task, dependents blocked, and tasks
run twice); Chromium renders the report. With ``CODITECT_WRITE_SCREENSHOT=1`` the screenshot is
also written to ``docs/report-deep-graph.png`` (the one in the repository was made that way).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from cli_projects import deep_graph, fake_project, run_cli
from test_report_html import DOCS, Dom, run_chromium

from coditect_core.reporting.svg import FIT_WIDTH

pytestmark = pytest.mark.timeout(180)
SVG = re.compile(r'<svg id="graph-svg" class="([^"]*)" data-layout="(\w+)"[^>]*? width="(\d+)"')
# Sets data-graph-fits on <html> once laid out: whether the graph's box needs no sideways scroll.
FITS_PROBE = (
    "<script>addEventListener('load',function(){var s=document.querySelector('#graph .scroll');"
    "document.documentElement.dataset.graphFits=String(s.scrollWidth<=s.clientWidth);});"
    "</script>"
)


@pytest.fixture(scope="module")
def deep_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deep")
    fake_project(
        folder,
        name="deep-graph",
        graph=deep_graph(60, 19),
        agents={"broken": {"type": "custom", "interface": "cli", "command": ["false"]}},
        task_agents={"D41": "broken"},
        filename="coditect.yaml",
    )
    assert run_cli("run", cwd=folder).returncode == 1  # D41 fails, its dependents are blocked
    for task in ("D07", "D18", "D29"):  # run again, with what depends on them
        assert run_cli("task", "fail", task, cwd=folder).returncode == 0
    assert run_cli("run", cwd=folder).returncode == 1
    page = folder / "report.html"
    done = run_cli("report", "--format", "html", "-o", page, cwd=folder)
    assert done.returncode == 0, done.stderr
    return page


def test_a_deep_graph_runs_downwards_within_the_page(deep_report: Path) -> None:
    html = deep_report.read_text()
    found = SVG.search(html)
    assert found is not None
    classes, layout, width = found.group(1).split(), found.group(2), int(found.group(3))
    assert layout == "rows"
    assert "down" in classes
    assert width <= FIT_WIDTH
    assert f'viewBox="0 0 {width} ' in html
    svg = html[found.start() : html.index("</svg>", found.start())]
    rights = [int(x) + int(w) for x, w in re.findall(r'<rect x="(\d+)" y="\d+" width="(\d+)"', svg)]
    assert len(rights) == 60
    assert max(rights) <= width
    assert len(re.findall(r'class="lvl v"[^>]*>level \d+ · \d+<', svg)) == 19
    assert 'class="edge long"' in svg  # an edge past a level: an arc beside the nodes
    assert "rows are dependency levels, top to bottom (19 levels" in html


def test_the_legend_explains_the_attempt_badge(deep_report: Path) -> None:
    html = deep_report.read_text()
    legend = html[html.index('<section id="graph">') : html.index('<div class="scroll')]
    assert '<b class="k-tries">\u00d73</b>attempts made, shown when more than one' in legend
    assert '<text class="tries"' in html
    assert "\u00d72</text>" in html


def test_a_shallow_graph_keeps_its_columns(tmp_path: Path) -> None:
    fake_project(tmp_path, filename="coditect.yaml")
    assert run_cli("run", cwd=tmp_path).returncode == 0
    done = run_cli("report", "--format", "html", cwd=tmp_path)
    found = SVG.search(done.stdout)
    assert found is not None
    assert found.group(2) == "columns"
    assert "columns are dependency levels (5)" in done.stdout


def test_the_deep_graph_fits_a_1400_px_window(deep_report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(deep_report.read_text().replace("</body>", FITS_PROBE + "</body>"))
    result = run_chromium(tmp_path, "--window-size=1400,1500", "--dump-dom", probed.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    html_tag = next(a for tag, a in Dom(result.stdout).tags if tag == "html")
    assert html_tag.get("data-graph-fits") == "true"
    shot = tmp_path / "report-deep-graph.png"
    result = run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,1500", deep_report.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1400, 1500)
    if os.environ.get("CODITECT_WRITE_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "report-deep-graph.png")

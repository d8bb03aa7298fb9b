"""The HTML report in a real browser: headless Chromium renders a recorded 50-task run.

The run (tests/support/report_scenario.py) has failures, retries, a fallback, blocked tasks and
task text
that tries to inject script. Chromium dumps the DOM after the page's own script ran; the test
reads it back: every task is there, the hostile titles are text, and none of their script ran.
The screenshot goes to a temporary folder; with ``CODITECT_WRITE_SCREENSHOT=1`` it is also
written to ``docs/report-screenshot.png`` (the one in the repository was made that way).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_scenario import IMG_TITLE, SCRIPT_TEXT, SCRIPT_TITLE, Recorded, record_scenario
from typer.testing import CliRunner

from coditect_core.cli.main import app
from coditect_core.reporting import read_report, render_html
from coditect_core.reporting.svg import FIT_WIDTH
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(180)
runner = CliRunner()
PROJECT = "report-demo"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail("Debian's chromium is needed (.ci/run installs it: apt-get install chromium)")
    return path


def run_chromium(tmp: Path, *args: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    argv = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    # Its own session, so that a hang (an injected alert() blocks the page) kills it all.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish in {timeout}s (a dialog opened by injected script?)")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class Dom(HTMLParser):
    """What the tests read from a dumped DOM: elements by id, attributes, scripts, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict[str, str | None]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a and a["id"] is not None:
            self.ids[a["id"]] = {"tag": tag, **a}
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if cls in (a.get("class") or "").split()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return asyncio.run(record_scenario(tmp_path_factory.mktemp("html"), latency=0.02))


@pytest.fixture(scope="module")
def page(recorded: Recorded) -> Path:
    out = recorded.project_file.parent / "report.html"
    result = runner.invoke(
        app, ["report", str(recorded.project_file), "-f", "html", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_chromium_renders_every_task_and_no_injected_script(page: Path, tmp_path: Path) -> None:
    result = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom(result.stdout)
    root = next(a for tag, a in dom.tags if tag == "html")
    assert root.get("data-ready") == "1", "the page's script ran to its end"
    assert "data-pwned" not in root, "an injected script ran"
    with StateStore.open(page.parent / ".coditect" / "state.db", readonly=True) as store:
        tasks = [t.task_id for t in store.snapshot(PROJECT).tasks]
        attempted = {a.task_id for a in store.attempts(PROJECT)}
    assert len(tasks) == 50
    nodes = {a["data-id"] for a in dom.with_class("node")}
    bars = {a["data-task"] for a in dom.with_class("bar")}
    for tid in tasks:
        assert dom.ids[f"task-{tid}"]["tag"] == "details", tid
        assert tid in nodes, tid
    assert bars == attempted
    # the hostile titles are text in the page, not elements or scripts
    text = "".join(dom.text)
    assert SCRIPT_TITLE in text
    assert IMG_TITLE in text
    assert SCRIPT_TEXT in text
    assert not any("alert(1)" in s or "pwned" in s for s in dom.scripts)
    assert [a for tag, a in dom.tags if tag == "img"] == []
    assert len(dom.scripts) == 1  # the report's own


def test_a_link_to_a_task_opens_its_details(page: Path, recorded: Recorded, tmp_path: Path) -> None:
    tid = recorded.scenario.fallback
    result = run_chromium(tmp_path, "--dump-dom", f"{page.as_uri()}#task-{tid}")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom(result.stdout)
    assert "open" in dom.ids[f"task-{tid}"]
    closed = [i for i, a in dom.ids.items() if i.startswith("task-") and "open" in a]
    assert closed == [f"task-{tid}"]


def test_page_is_self_contained(page: Path) -> None:
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html
    assert "@import" not in html
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {"#arrow"}
    assert html.count("<script>") == 1


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report-screenshot.png"
    result = run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1000)
    if os.environ.get("CODITECT_WRITE_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "report-screenshot.png")


def test_500_tasks_stay_readable(tmp_path: Path) -> None:
    recorded = asyncio.run(record_scenario(tmp_path, 500, latency=0.0, concurrency=16))
    with StateStore.open(recorded.state, readonly=True) as store:
        data = read_report(store, PROJECT)
    html = render_html(data)
    assert len(data.tasks) == 500
    assert len(html.encode()) < 3_000_000
    # too wide for columns (levels of 20 to 70 tasks wrap onto several): it runs downwards,
    # each level a row wrapped to the page's width (issue 18; it was: never taller than 30 nodes)
    graph = re.search(r'<svg id="graph-svg"[^>]* data-layout="(\w+)"[^>]* width="(\d+)"', html)
    assert graph is not None
    assert graph.group(1) == "rows"
    assert int(graph.group(2)) <= FIT_WIDTH
    out = tmp_path / "big.html"
    out.write_text(html)
    result = run_chromium(tmp_path, "--dump-dom", out.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom(result.stdout)
    assert sum(1 for i in dom.ids if i.startswith("task-")) == 500
    assert next(a for tag, a in dom.tags if tag == "html").get("data-ready") == "1"

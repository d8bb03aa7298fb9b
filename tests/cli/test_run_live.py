"""The live display of ``coditect run`` in a real terminal (tmux), on the real OpenAI SDK against
the stub: a 30-task project whose first request gets a 429 with Retry-After.

What the screen shows is read with ``tmux capture-pane`` and polled against a deadline (no fixed
sleeps: a loaded machine only makes it slower): the header's counts, the per-task lines with
their attempt number, the task waiting for its retry (and how long), then the retry as attempt
2; after Ctrl-C, nothing of the display is left, only the messages. A second run starts with
"resumed: N already done" and leaves only its summary. tmux is a test dependency (``.ci/run``
installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from cli_projects import coditect_argv, snapshot
from reliability_support import KEY
from stub_server import StubServer, status

pytestmark = pytest.mark.timeout(180)

NAME = "live"
HEADER = re.compile(
    r"done (\d+)/30 · running (\d+) · failed (\d+) · blocked (\d+) · ([\d,]+) tokens · "
    r"(\S+) · ETA "
)
WAITING = re.compile(r"^  (T\d\d)  gpt  attempt 1  .*  waiting (.+) to retry: .*Rate limit", re.M)


def _project(directory: Path, stub: StubServer) -> Path:
    spec = {
        "project": NAME,
        "defaults": {"agent": "gpt", "max_concurrency": 4},
        "agents": {
            "gpt": {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": stub.openai_url,
                "timeout": 30,
            }
        },
        "tasks": [
            {"id": f"T{i:02d}", "title": f"task {i}", "description": "Say hi."} for i in range(30)
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


class Terminal:
    """A tmux server of our own (its own socket) running one command in a 120x40 pane, which
    stays once the command exits (to read its last screen).

    The command runs under ``sh``, which writes its exit status to a file: tmux may mark a pane
    dead before it collects the status (``#{pane_dead_status}`` stays empty), so the status is
    not read from tmux. The shell traps SIGINT (a Ctrl-C goes to the whole foreground group) so
    that it lives on to write the status; the command gets the default action back."""

    def __init__(self, socket: str, directory: Path) -> None:
        self.socket = socket
        self.status_file = directory / "exit-status"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def start(self, command: str, cwd: Path, **env: str) -> None:
        """Run the shell command line ``command`` in ``cwd`` with ``env`` added."""
        self.status_file.unlink(missing_ok=True)
        status = shlex.quote(str(self.status_file))
        script = f"trap true INT; {command}; echo $? > {status}.new && mv {status}.new {status}"
        setenv = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
        self.tmux(
            "new-session", "-d", "-s", "run", "-x", "120", "-y", "40", "-c", str(cwd), *setenv,
            shlex.join(["sh", "-c", script]), ";", "set-option", "-t", "run", "remain-on-exit",
            "on",
        )  # fmt: skip

    def screen(self) -> str:
        """The screen and the lines scrolled off it (tmux scrolls one when it writes "Pane is
        dead" under an exited command), without that line."""
        text = self.tmux("capture-pane", "-p", "-S", "-", "-t", "run")
        return "\n".join(line for line in text.splitlines() if not line.startswith("Pane is dead"))

    def exit_status(self) -> int | None:
        """The command's exit status once it exited, else ``None``."""
        try:
            return int(self.status_file.read_text())
        except FileNotFoundError:
            return None

    def wait_for(self, check: Callable[[str], object], what: str, within: float = 60) -> str:
        """Poll the screen until ``check(screen)`` is true; the screen."""
        deadline = time.monotonic() + within
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            if self.exit_status() is not None:
                screen = self.screen()
                if check(screen):
                    return screen
                raise AssertionError(f"the run ended before {what}:\n{screen}")
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {within} s:\n{screen}")

    def wait_exit(self, within: float = 60) -> int:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            code = self.exit_status()
            if code is not None:
                return code
            time.sleep(0.05)
        raise AssertionError(f"the run did not exit within {within} s:\n{self.stacks()}")

    def stacks(self) -> str:
        """The screen after the command's Python threads dumped their stacks on it (it runs
        with PYTHONFAULTHANDLER: SIGABRT prints every thread's traceback), to say where a
        command that does not exit is stuck."""
        shell = self.tmux("display-message", "-p", "-t", "run", "#{pane_pid}").strip()
        children = subprocess.run(
            ["pgrep", "-P", shell], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGABRT)
        time.sleep(1)  # diagnostics only: the test has failed already
        return self.screen()

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the live display test (.ci/run installs it)")
    term = Terminal(f"coditect-test-{os.getpid()}-{time.monotonic_ns()}", tmp_path)
    try:
        yield term
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # no server was started
            term.close()


def _header(screen: str) -> tuple[int, ...] | None:
    found = HEADER.search(screen)
    return tuple(int(g.replace(",", "")) for g in found.groups()[:5]) if found else None


def test_live_display_in_a_terminal_with_a_429_retry_then_ctrl_c(
    tmp_path: Path, terminal: Terminal
) -> None:
    with StubServer(latency=1.0) as stub:
        stub.script(status(429, retry_after=3))  # the first request to arrive
        project = _project(tmp_path, stub)
        run = shlex.join([*coditect_argv(), "run", project.name])  # short: messages fit a line
        terminal.start(run, tmp_path, OPENAI_API_KEY=KEY, PYTHONFAULTHANDLER="1")

        # The task that got the 429 waits for its retry, shown with the time left.
        screen = terminal.wait_for(WAITING.search, "task waiting for its retry")
        found = WAITING.search(screen)
        assert found is not None
        retried = found.group(1)
        assert re.fullmatch(r"\d+\.\d\d s", found.group(2)), found.group(2)
        header = _header(screen)
        assert header is not None, screen
        done, running, failed, blocked, _ = header
        assert 1 <= running <= 4
        assert (failed, blocked) == (0, 0)
        assert done + running <= 30
        lines = re.findall(r"^  T\d\d  gpt  attempt \d  ", screen, re.M)
        assert len(lines) == running  # one line per task in flight

        # The retry goes out: the same task, attempt 2.
        attempt2 = re.compile(rf"^  {retried}  gpt  attempt 2  \d", re.M)
        screen = terminal.wait_for(attempt2.search, f"{retried} on attempt 2")
        assert not WAITING.search(screen)

        # Some done, tokens counted; then Ctrl-C.
        def progressed(text: str) -> bool:
            figures = _header(text)
            return figures is not None and figures[0] >= 2 and figures[4] > 0

        terminal.wait_for(progressed, "two tasks done")
        terminal.tmux("send-keys", "-t", "run", "C-c")
        assert terminal.wait_exit() == 130
        screen = terminal.screen()
        assert "stopping: cancelling the calls in flight" in screen
        assert "interrupted: state saved" in screen
        # Nothing of the display is left: no header, no task line, no half-drawn line.
        assert "running" not in screen
        assert "attempt" not in screen
        assert "ETA" not in screen
        text = [line for line in screen.splitlines() if line.strip()]
        assert len(text) == 2, screen
        assert text[0].startswith("stopping:")
        assert text[1].startswith("interrupted:")

        # The next run says how many are already done, and ends with its summary only.
        snap = snapshot(tmp_path / ".coditect" / "state.db", NAME)
        already = snap.counts.get("completed", 0)
        assert already >= 2
        terminal.close()
        terminal.start(run, tmp_path, OPENAI_API_KEY=KEY, PYTHONFAULTHANDLER="1")
        terminal.wait_for(
            lambda s: f"resumed: {already} already done" in s, "the resumed line", within=60
        )
        assert terminal.wait_exit() == 0
        screen = terminal.screen()
        assert "ETA" not in screen
        assert "resumed:" not in screen


def test_with_json_on_stdout_the_display_still_goes_to_the_terminal(
    tmp_path: Path, terminal: Terminal
) -> None:
    with StubServer(latency=0.5) as stub:
        project = _project(tmp_path, stub)
        run = shlex.join([*coditect_argv(), "run", project.name, "--json", "-j", "8"])
        terminal.start(f"{run} > out.json", tmp_path, OPENAI_API_KEY=KEY, PYTHONFAULTHANDLER="1")
        terminal.wait_for(_header, "the header on the terminal")
        assert terminal.wait_exit() == 0
        assert "ETA" not in terminal.screen()  # cleared at the end
    document = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert "\x1b" not in document  # stdout is the JSON alone
    assert json.loads(document)["counts"]["completed"] == 30

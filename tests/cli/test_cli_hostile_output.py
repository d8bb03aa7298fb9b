"""Hostile text from agents and files never reaches a terminal raw (issue 19, part 3).

An agent (the fake provider, scripted through its ``default`` option) replies with a window
title (OSC 0), a clipboard write (OSC 52), a screen clear (``ESC[2J``), a query the terminal
answers on stdin (``ESC[6n``), an OSC 8 link, a C1 CSI (U+009B), a NUL byte, Rich markup and an
emoji code; another agent (a command) fails with the same on stderr, and a task title holds an
escape too. Through the real command, piped: ``run`` (its plain progress lines and its summary),
``show``, ``tasks``, ``status``, ``next``, ``report`` (Markdown and HTML) print none of those
bytes raw, show them visibly (``\\x1b``) and print the markup literally; ``--json`` gives the
exact text back, with no raw control character. On a terminal (a pseudo-terminal), ``run``'s
live display and its summary print none of the sequences either.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import coditect_argv, env, run_cli

pytestmark = pytest.mark.timeout(180)

PAYLOAD = (
    "A\x1b]0;PWNED-TITLE\x07B\x1b]52;c;cHduZWQ=\x07C\x1b[2JD\x1b[6nE"
    "\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\F\x9b31mG\x00H"
    " [bold]not bold[/bold] :smile: \u202eevil"
)
# What must never be printed raw (on a terminal, Rich's own colours are ESC sequences too: there
# the test looks for the hostile sequences themselves).
RAW = ["\x1b", "\x9b", "\x00", "\x07", "\u202e"]
SEQUENCES = [
    "\x1b]0;",
    "\x1b]52;",
    "\x1b[2J",
    "\x1b[6n",
    "\x1b]8;",
    "\x9b",
    "\x00",
    "\x07",
    "\u202e",
]
FAILING = (
    "import sys; sys.stderr.write('boom \\x1b]0;ERR-TITLE\\x07 \\x1b[2J \\x9b1m [red]x[/red]');"
    " sys.exit(1)"
)


def _project(directory: Path) -> Path:
    spec = {
        "project": "hostile",
        "defaults": {"agent": "fake", "max_concurrency": 2},
        "agents": {
            "fake": {"type": "custom", "provider": "fake", "options": {"default": PAYLOAD}},
            "broken": {
                "type": "custom",
                "interface": "cli",
                "command": [sys.executable, "-c", FAILING],
            },
        },
        "tasks": [
            {"id": "T1", "title": "title \x1b]0;FILE-TITLE\x07 here", "description": "Do it."},
            {"id": "T2", "title": "second", "description": "Then.", "dependencies": ["T1"]},
            {"id": "T3", "title": "fails", "description": "Fail.", "agent": "broken"},
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _assert_inert(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{where}: raw {raw!r} printed"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    project = _project(tmp_path_factory.mktemp("hostile"))
    done = run_cli("run", project)
    assert done.returncode == 1, done.stderr  # T3 fails
    return project, done


def test_run_progress_and_summary_print_nothing_raw(ran: tuple[Path, Any]) -> None:
    _, done = ran
    _assert_inert(done.stdout, "run stdout")
    _assert_inert(done.stderr, "run stderr")
    assert "\\x1b]0;ERR-TITLE\\x07" in done.stderr  # the failing command's error, visibly
    assert "[red]x[/red]" in done.stderr  # markup from a command stays literal


def test_show_prints_escapes_visibly_and_markup_literally(ran: tuple[Path, Any]) -> None:
    project, _ = ran
    done = run_cli("show", project, "T1")
    assert done.returncode == 0, done.stderr
    _assert_inert(done.stdout + done.stderr, "show")
    out = done.stdout
    assert "A\\x1b]0;PWNED-TITLE\\x07B\\x1b]52;c;cHduZWQ=\\x07C\\x1b[2JD\\x1b[6nE" in out
    assert "\\x9b31mG\\x00H" in out
    assert "[bold]not bold[/bold] :smile:" in out  # neither markup nor an emoji
    assert "\\u202eevil" in out
    assert "title \\x1b]0;FILE-TITLE\\x07 here" in out  # from the file: inert too
    # T2's prompt carries T1's output: inert there too.
    second = run_cli("show", project, "T2")
    _assert_inert(second.stdout, "show T2")
    assert "\\x1b[6n" in second.stdout
    failed = run_cli("show", project, "T3")
    _assert_inert(failed.stdout, "show T3")
    assert "\\x1b]0;ERR-TITLE\\x07" in failed.stdout


def test_json_keeps_the_exact_text(ran: tuple[Path, Any]) -> None:
    project, _ = ran
    done = run_cli("show", project, "T1", "--json")
    assert done.returncode == 0, done.stderr
    _assert_inert(done.stdout, "show --json")  # every control character escaped as \\u....
    data = json.loads(done.stdout)
    assert data["output"] == PAYLOAD
    assert data["attempts"][-1]["output"] == PAYLOAD
    assert data["title"] == "title \x1b]0;FILE-TITLE\x07 here"
    tasks = run_cli("tasks", project, "--json")
    _assert_inert(tasks.stdout, "tasks --json")
    assert json.loads(tasks.stdout)["tasks"][0]["title"] == data["title"]
    report = run_cli("report", project, "--json")
    _assert_inert(report.stdout, "report --json")
    rows = {t["task_id"]: t for t in json.loads(report.stdout)["tasks"]}
    assert rows["T1"]["output"] == PAYLOAD


def test_every_listing_and_report_prints_nothing_raw(ran: tuple[Path, Any]) -> None:
    project, _ = ran
    for args in (
        ["tasks", project],
        ["status", project],
        ["next", project],
        ["run", project, "--dry-run"],
        ["report", project],
        ["report", project, "--format", "html"],
    ):
        done = run_cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        _assert_inert(done.stdout + done.stderr, " ".join(map(str, args[:1] + args[2:])))
    tasks = run_cli("tasks", project).stdout
    assert "\\x1b]0;FILE-TITLE\\x07" in tasks
    markdown = run_cli("report", project).stdout
    assert r"\\x1b\]0;ERR-TITLE\\x07" in markdown  # the problem's error, visibly (escaped)
    html = run_cli("report", project, "--format", "html").stdout
    assert "\\x1b]52;c;cHduZWQ=\\x07" in html  # the output, in the task's details
    assert "[bold]not bold[/bold]" in html


def _run_on_a_terminal(*args: str | Path, timeout: float = 60) -> tuple[int, str]:
    """``coditect ARGS`` with stdout and stderr on a pseudo-terminal: its exit status, and
    everything it wrote there."""
    leader, follower = pty.openpty()
    child_env = env(TERM="xterm-256color", COLUMNS="160", LINES="40")
    child_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*coditect_argv(), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=child_env,
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_live_display_on_a_terminal_prints_no_hostile_sequence(tmp_path: Path) -> None:
    project = _project(tmp_path)
    code, screen = _run_on_a_terminal("run", project)
    assert code == 1, screen
    assert "\x1b[" in screen  # a terminal: Rich's colours and cursor moves are there
    for sequence in SEQUENCES:
        assert sequence not in screen, f"raw {sequence!r} on the terminal"
    assert "\\x1b]0;ERR-TITLE\\x07" in screen  # the failing task's error, visibly
    code, screen = _run_on_a_terminal("show", project, "T1")
    assert code == 0, screen
    for sequence in SEQUENCES:
        assert sequence not in screen, f"raw {sequence!r} on the terminal"
    assert "[bold]not bold[/bold]" in screen


def test_show_cuts_a_huge_output_with_a_note_and_full_prints_it_fast(tmp_path: Path) -> None:
    """A 10 MB output (recorded by hand: what a reply may store is capped elsewhere): cut with
    a note saying how many bytes and how to get the whole, at once; --full prints it all in
    linear time (seconds, not the half minute it took); --json has it exactly."""
    huge = ("0123456789abcdef" * 64 + "\n") * 10_000  # 10.25 MB, 10,000 lines
    spec = {
        "project": "huge",
        "agents": {"fake": {"type": "custom", "provider": "fake"}},
        "tasks": [{"id": "BIG", "title": "big", "description": "Say a lot."}],
    }
    project = tmp_path / "project.yaml"
    project.write_text(yaml.safe_dump(spec), encoding="utf-8")
    (tmp_path / "big.txt").write_text(huge, encoding="utf-8")
    done = run_cli("task", "complete", project, "BIG", "--output", tmp_path / "big.txt")
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    done = run_cli("show", project, "BIG", timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) < 100_000
    cut = len(huge.encode()) - 20_000
    assert f"{cut:,} more bytes not shown" in done.stdout
    assert "--full" in done.stdout
    assert "--json" in done.stdout
    assert took < 15, took  # the whole command, start-up included
    started = time.monotonic()
    full = run_cli("show", project, "BIG", "--full", timeout=120)
    took = time.monotonic() - started
    assert full.returncode == 0, full.stderr
    assert huge in full.stdout
    assert took < 20, took
    data = json.loads(run_cli("show", project, "BIG", "--json", timeout=120).stdout)
    assert data["output"] == huge


def test_ask_streams_inert_text_and_masks_a_key_cut_across_pieces() -> None:
    """The fake model echoes the prompt, streamed in pieces of 8 characters: the key in it is
    cut across pieces, and still masked whole; the escapes print visibly; --json is exact."""
    key = "sk-canary-0123456789abcdef"
    prompt = f"say {PAYLOAD.replace(chr(0), '')} and {key} now"  # (no NUL in an argument)
    done = run_cli("ask", "--type", "fake", prompt, extra_env={"CANARY_API_KEY": key})
    assert done.returncode == 0, done.stderr
    _assert_inert(done.stdout + done.stderr, "ask")
    assert "\\x1b]52;c;cHduZWQ=\\x07" in done.stdout
    assert "and *** now" in done.stdout
    for i in range(len(key) - 7):
        assert key[i : i + 8] not in done.stdout
    as_json = run_cli("ask", "--type", "fake", "--json", prompt, extra_env={"CANARY_API_KEY": key})
    _assert_inert(as_json.stdout, "ask --json")
    text = json.loads(as_json.stdout)["text"]
    assert "and *** now" in text
    assert "\x1b]52;c;cHduZWQ=\x07" in text  # exact, once decoded

"""``coditect run`` as a real process on the real OpenAI SDK against the stub: SIGINT and SIGTERM
(exit 130, state committed, the next run resumes without calling a finished task again), a
second signal exiting at once, a signal while the project loads or while Python tears the
process down (still 130, never a death by the signal), and a budget stop (the unstarted tasks
listed, then resumed). Each signal is sent once the child says (a line it printed, a reply the
stub sent, /proc) that it reached the point the test is about; every wait has a deadline."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import coditect_argv, env, fake_project, run_cli
from reliability_support import KEY
from stub_server import StubServer

from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(180)

NAME = "signals"
TASKS = [f"T{i:02d}" for i in range(10)]


def _project(directory: Path, stub: StubServer) -> Path:
    spec = {
        "project": NAME,
        "defaults": {"agent": "gpt", "max_concurrency": 2},
        "agents": {
            "gpt": {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": stub.openai_url,
                "timeout": 30,
            }
        },
        "tasks": [{"id": tid, "title": f"task {tid}", "description": "Say hi."} for tid in TASKS],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _state(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def _asked(stub: StubServer) -> list[str]:
    """The tasks the stub was asked about, in arrival order."""
    out = []
    for r in stub.requests:
        found = re.search(r"# Task (T\d+)", json.dumps(r.body))
        assert found is not None
        out.append(found.group(1))
    return out


class Child:
    """A child process whose stdout and stderr are read line by line on threads, so that a
    test can wait (with a deadline) for a line that says the child reached a point."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self._seen = threading.Condition()
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            with self._seen:
                self._lines[name].append(line)
                self._seen.notify_all()
        with self._seen:
            self._lines[name].append("")  # end of stream
            self._seen.notify_all()

    @property
    def stdout(self) -> str:
        with self._seen:
            return "".join(self._lines["stdout"])

    @property
    def stderr(self) -> str:
        with self._seen:
            return "".join(self._lines["stderr"])

    def wait_for(self, text: str, stream: str = "stderr", timeout: float = 60) -> None:
        """Wait until a line of ``stream`` contains ``text``; fail if the stream ends first."""
        lines = self._lines[stream]
        with self._seen:
            self._seen.wait_for(
                lambda: any(text in line for line in lines) or (lines and lines[-1] == ""),
                timeout,
            )
            assert any(text in line for line in lines), (
                f"no {text!r} on {stream} (exit {self.proc.poll()}): {''.join(lines)}"
            )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float) -> int:
        """Wait for the exit (at most ``timeout`` s) and for both streams; the exit status."""
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _start(project: Path, *args: str) -> Child:
    return Child([*coditect_argv(), "run", str(project), *args], env=env(OPENAI_API_KEY=KEY))


def _wait_replies(stub: StubServer, child: Child, n: int) -> None:
    deadline = time.monotonic() + 60
    while stub.reply_count < n:
        assert child.proc.poll() is None, child.stderr
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def _wait_stub_idle(stub: StubServer) -> None:
    """Wait until the stub has seen every connection of the ended run close (the calls the run
    gave up end without a reply), so that they cannot count in the next run's figures."""
    deadline = time.monotonic() + 30
    while stub.open_connections:
        assert time.monotonic() < deadline, f"{stub.open_connections} connection(s) still open"
        time.sleep(0.02)


def _check_interrupted_state(project: Path) -> set[str]:
    """The interrupted run left nothing in flight; returns the tasks that succeeded."""
    with StateStore.open(_state(project), readonly=True) as store:
        snap = store.snapshot(NAME)
        assert snap.runs[-1].status == "interrupted"
        assert "in_progress" not in snap.counts
        assert not snap.in_flight
        attempts = store.attempts(NAME)
        assert all(a.status != "running" for a in attempts)
        done = set(store.succeeded_tasks(NAME))
    assert done
    assert done != set(TASKS)
    return done


def _resume_and_check(project: Path, stub: StubServer, done_before: set[str]) -> None:
    _wait_stub_idle(stub)
    stub.clear()
    resumed = run_cli("run", project, "--json", extra_env={"OPENAI_API_KEY": KEY})
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert set(data["skipped"]) == done_before
    asked = _asked(stub)
    assert not set(asked) & done_before, "a finished task was called again"
    assert set(asked) == set(TASKS) - done_before
    assert stub.reply_count == len(asked)  # each remaining task called once, no fault here


STOPPING = "stopping: cancelling the calls in flight and saving the state"
SAVED = "interrupted: state saved; run the same command to resume"
SAVED_AFTER_RESTART = "interrupted: state saved; to resume, run: "  # not the same command


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cancels_commits_exits_130_and_the_next_run_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with StubServer(latency=0.4) as stub:
        project = _project(tmp_path, stub)
        with _start(project) as child:
            _wait_replies(stub, child, 3)
            child.signal(sig)
            code = child.finish(timeout=60)
        err = child.stderr
        assert code == 130, err
        assert STOPPING in err  # the handler ran: a clean stop, not a death by the signal
        assert SAVED in err
        assert "exiting now" not in err  # one signal: no exit at once
        done_before = _check_interrupted_state(project)
        with StateStore.open(_state(project), readonly=True) as store:
            every = store.attempts(NAME)
        # A call in flight was cancelled (or, cut while its end was being written, marked
        # interrupted); one cancelled before it went out left no attempt. None is billed as 0.
        cut = [a for a in every if a.status != "succeeded"]
        assert {a.status for a in cut} <= {"cancelled", "interrupted"}, cut
        assert all(a.cost is None for a in cut)
        assert set(_asked(stub)) >= done_before
        _resume_and_check(project, stub, done_before)


def test_a_second_sigint_exits_130_without_harming_the_state(tmp_path: Path) -> None:
    with StubServer(latency=0.4) as stub:
        project = _project(tmp_path, stub)
        with _start(project) as child:
            _wait_replies(stub, child, 3)
            child.signal(signal.SIGINT)
            child.wait_for(STOPPING)  # the first one is being handled: a clean stop began
            child.signal(signal.SIGINT)
            code = child.finish(timeout=60)
        err = child.stderr
        # 130 wherever the second one lands: during the clean stop (exit at once), once the run
        # is over (exit at once), or while Python tears the process down (ignored: the status
        # the clean stop set). Never a death by SIGINT.
        assert code == 130, err
        assert (
            "interrupted again: exiting now; the next run resumes" in err
            or "interrupted: exiting now; the run is over and its state saved" in err
            or SAVED in err
        ), err
        # Whichever way it ended (clean, or cut short by the second signal), the state opens,
        # and what was in flight is marked interrupted, never left running.
        with StateStore.open(_state(project)) as store:  # for writing: recovery runs
            snap = store.snapshot(NAME)
            assert not snap.in_flight
            assert "in_progress" not in snap.counts
            assert snap.runs[-1].status == "interrupted"
            done_before = set(store.succeeded_tasks(NAME))
            check = store.read(lambda conn: conn.execute("PRAGMA integrity_check").fetchone())
            assert check == ("ok",)
        assert done_before
        _resume_and_check(project, stub, done_before)


def _catches_sigint(pid: int) -> bool | None:
    """Whether process ``pid`` runs a handler for SIGINT (``SigCgt`` in /proc/PID/status);
    None once it has exited (gone, or a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields["State"].strip()[:1] in ("Z", "X"):
        return None
    return bool(int(fields["SigCgt"], 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status")
def test_a_second_sigint_while_python_tears_the_process_down_still_exits_130(
    tmp_path: Path,
) -> None:
    """After the clean stop, Python runs its atexit calls, then puts the default action of
    every signal back and destroys its modules (~0.1 s with the SDKs loaded). Until the CLI
    ignored the signals from its last atexit call on, a second Ctrl-C in those instants
    killed the process (-SIGINT). The signal is sent once the process no longer runs a handler
    for SIGINT: exactly that window."""
    with StubServer(latency=0.4) as stub:
        project = _project(tmp_path, stub)
        for _ in range(3):  # a loaded machine may let the window pass unseen: try again
            stub.clear()
            with _start(project, "--restart") as child:
                _wait_replies(stub, child, 1)
                child.signal(signal.SIGINT)
                child.wait_for(SAVED_AFTER_RESTART)
                while (caught := _catches_sigint(child.proc.pid)) is True:
                    time.sleep(0.0005)
                if caught is False:
                    child.signal(signal.SIGINT)
                code = child.finish(timeout=60)
            assert code == 130, child.stderr
            if caught is False:
                break
            _wait_stub_idle(stub)
        else:
            pytest.fail("the process exited each time before the signal could be sent")
    assert "exiting now" not in child.stderr  # no handler ran: the signal was ignored


TEARDOWN = textwrap.dedent(
    """
    import os, signal, sys
    from coditect_core.cli.run import _install_stop_signals

    class SignalDuringTeardown:
        # Destroyed with __main__'s globals: after Python put the default actions back.
        def __del__(self, kill=os.kill, pid=os.getpid(), sig=signal.{sig}, write=os.write):
            write(1, b"teardown\\n")
            kill(pid, sig)
            write(1, b"survived\\n")

    _install_stop_signals()
    keep = SignalDuringTeardown()
    sys.exit(130)
    """
)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_the_interpreter_teardown_is_ignored(sig: str) -> None:
    """The same window as above, made certain: an object destroyed while Python tears down
    its modules signals its own process. It exits with the status it had, not by the signal."""
    with Child([sys.executable, "-c", TEARDOWN.replace("{sig}", sig)]) as child:
        code = child.finish(timeout=60)
    assert child.stdout == "teardown\nsurvived\n", child.stderr
    assert code == 130, child.stderr


def _open_for_writing(fifo: Path, child: Child) -> int:
    """Open ``fifo`` for writing once ``child`` has opened it to read (ENXIO until then)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
        assert child.proc.poll() is None, child.stderr
        assert time.monotonic() < deadline, "the run never opened its project file"
        time.sleep(0.01)


# `coditect run`, whose project file is read only once a FIFO given as argv[2] has been read:
# the run blocks while the project loads, before anything has started. (A project file that is
# itself a FIFO is refused at once now, as any file that is not a regular file.)
LOADS_SLOWLY = textwrap.dedent(
    """
    import sys
    from coditect_core.app import session
    from coditect_core.cli.main import main

    read_project_file, gate = session.read_project_file, sys.argv[2]

    def read_after_the_gate(path):
        with open(gate) as fifo:
            fifo.read()
        return read_project_file(path)

    session.read_project_file = read_after_the_gate
    sys.argv = ["coditect", "run", sys.argv[1]]
    main()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_project_loads_exits_130_and_writes_nothing(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The run blocks while it loads its project file (on a FIFO it reads first), before
    anything has started. (SIGTERM had its default action until the event loop ran: the
    process died by it.)"""
    project = fake_project(tmp_path)
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    argv = [sys.executable, "-c", LOADS_SLOWLY, str(project), str(fifo)]
    with Child(argv, env=env()) as child:
        writer = _open_for_writing(fifo, child)  # the child is in ProjectSession.open now
        try:
            child.signal(sig)
            code = child.finish(timeout=60)
        finally:
            os.close(writer)
    assert code == 130, child.stderr
    assert "interrupted before the run started: nothing was run" in child.stderr
    assert not (tmp_path / ".coditect").exists()  # no state written


STUCK = textwrap.dedent(
    """
    import asyncio, sys
    from coditect_core.cli.run import _install_stop_signals

    async def cleanup_forever():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("cancelled; cleaning up slowly", flush=True)
            await asyncio.sleep(60)  # a clean stop that takes too long

    async def main():
        task = asyncio.current_task()
        _install_stop_signals(asyncio.get_running_loop(), task)
        print("ready", flush=True)
        await cleanup_forever()

    asyncio.run(main())
    """
)


def test_the_second_signal_does_not_wait_for_a_slow_clean_stop() -> None:
    with Child([sys.executable, "-c", STUCK]) as child:
        child.wait_for("ready", "stdout")
        child.signal(signal.SIGINT)
        child.wait_for("cleaning up slowly", "stdout")
        child.signal(signal.SIGINT)
        code = child.finish(timeout=30)  # not the 60 s of the clean stop
    assert code == 130
    assert STOPPING in child.stderr
    assert "interrupted again: exiting now" in child.stderr


def test_budget_stop_lists_unstarted_tasks_then_the_next_run_goes_on(tmp_path: Path) -> None:
    with StubServer() as stub:
        project = _project(tmp_path, stub)
        done = run_cli(
            "run", project, "--json", "--max-tokens", "1", "--concurrency", "1",
            extra_env={"OPENAI_API_KEY": KEY},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        assert data["stop_reason"] == "budget"
        assert data["budget"]["reached"] == "max_tokens"
        assert data["budget"]["max_tokens"] == 1
        assert data["budget"]["spent_tokens"] == data["cost"]["total_tokens"] > 0
        assert data["counts"]["completed"] == 1  # one at a time: the first one spent it all
        assert data["unstarted"] == TASKS[1:]
        assert stub.request_count == 1
        assert "budget reached (max_tokens 1)" in done.stderr
        assert "9 task(s) not started: T01, T02" in done.stderr
        with StateStore.open(_state(project), readonly=True) as store:
            assert {t.task_id: t.status for t in store.snapshot(NAME).tasks} == {
                tid: "completed" if tid == "T00" else "pending" for tid in TASKS
            }
        _resume_and_check(project, stub, {"T00"})

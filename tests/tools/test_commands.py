"""run_command (tools/commands.py): an argv on the allow-list, never a shell; a timeout that
ends the process tree; output capped; no provider key in the command's environment; no network
when the sandbox is on (a listener on this machine's 127.0.0.1 gets no connection)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import ToolArgumentsError
from coditect_core.tools import sandbox as sandbox_module
from coditect_core.tools.base import ToolResult
from coditect_core.tools.commands import CommandToolset, parse_allow_commands
from coditect_core.tools.sandbox import Sandbox, detect_sandbox

PY = sys.executable


def call(toolset: CommandToolset, **arguments: Any) -> ToolResult:
    return asyncio.run(toolset.call("run_command", arguments))


def python_tools(root: Path, **options: Any) -> CommandToolset:
    return CommandToolset(root, [[PY, "-c"]], **options)


def test_parse_allow_commands_splits_strings_and_takes_lists() -> None:
    assert parse_allow_commands(["pytest", "python -m pytest", ["ruff", "check"]]) == (
        ("pytest",),
        ("python", "-m", "pytest"),
        ("ruff", "check"),
    )
    with pytest.raises(ToolArgumentsError, match="is empty"):
        parse_allow_commands([""])
    with pytest.raises(ToolArgumentsError, match="must be a string or a list"):
        parse_allow_commands([3])  # type: ignore[list-item]


def test_an_allow_entry_is_a_prefix_of_argv_words(tmp_path: Path) -> None:
    tools = CommandToolset(tmp_path, ["pytest", "python -m pytest"])
    assert tools.allowed(["pytest", "-q"])
    assert tools.allowed(["python", "-m", "pytest", "-x"])
    assert not tools.allowed(["python", "-c", "print(1)"])
    assert not tools.allowed(["python", "-m"])
    assert not tools.allowed(["pytestx"])
    assert not tools.allowed(["/usr/bin/pytest"])


def test_a_command_not_on_the_allow_list_is_refused_and_not_run(tmp_path: Path) -> None:
    tools = CommandToolset(tmp_path, ["pytest"])
    result = call(tools, argv=["touch", "ran"])
    assert result.is_error
    assert result.content == (
        "run_command: command 'touch ran' is not allowed: allowed are commands starting "
        "with 'pytest'"
    )
    assert not (tmp_path / "ran").exists()


def test_a_shell_string_is_refused_clearly(tmp_path: Path) -> None:
    tools = CommandToolset(tmp_path, ["touch"])
    result = call(tools, argv="touch a; touch b")
    assert result.is_error
    assert "argv must be a list of words, not a shell string" in result.content
    assert "no shell is used" in result.content
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"argv": []}, "non-empty list"),
        ({"argv": ["a", 3]}, "argv"),
        ({}, "argv"),
        ({"argv": ["pytest"], "timeout_s": 0}, "timeout_s must be positive"),
    ],
)
def test_bad_arguments_are_error_results(
    tmp_path: Path, arguments: dict[str, Any], words: str
) -> None:
    result = asyncio.run(CommandToolset(tmp_path, ["pytest"]).call("run_command", arguments))
    assert result.is_error
    assert words in result.content


def test_a_command_runs_in_the_workspace_and_answers_its_exit_code_and_output(
    tmp_path: Path,
) -> None:
    code = "import os, sys; print(os.getcwd()); print('oops', file=sys.stderr); sys.exit(3)"
    result = call(python_tools(tmp_path), argv=[PY, "-c", code])
    assert not result.is_error
    assert result.content == (
        f"exit code: 3\n--- stdout ---\n{tmp_path.resolve()}\n\n--- stderr ---\noops\n"
    )


def test_a_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child_alive"
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = 'import time; time.sleep(3); open(sys.argv[1], \"w\")'\n"
        "subprocess.Popen([sys.executable, '-c', 'import sys; ' + child, sys.argv[1]])\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    tools = CommandToolset(tmp_path, [[PY, str(script)]], timeout_s=1.0)
    result = call(tools, argv=[PY, str(script), str(marker)])
    assert time.monotonic() - started < 20
    assert result.is_error
    assert "did not finish within 1s" in result.content
    assert "killed" in result.content
    time.sleep(3.5)
    assert not marker.exists()  # the child was ended with it


def test_a_call_may_shorten_the_timeout_but_not_lengthen_it(tmp_path: Path) -> None:
    tools = python_tools(tmp_path, timeout_s=1.0)
    result = call(tools, argv=[PY, "-c", "import time; time.sleep(30)"], timeout_s=1000)
    assert result.is_error
    assert "within 1s" in result.content


def test_output_is_capped_with_a_marker(tmp_path: Path) -> None:
    tools = python_tools(tmp_path, max_output_chars=2000)
    code = "import sys; print('o' * 100000 + 'END'); print('e' * 100000 + 'ERR', file=sys.stderr)"
    result = call(tools, argv=[PY, "-c", code])
    assert not result.is_error
    assert len(result.content) < 2300
    assert result.truncated
    assert "truncated" in result.content
    # The tails of both streams are kept (where a failure says what went wrong).
    assert "END" in result.content
    assert "ERR" in result.content


def test_provider_keys_and_unpassed_variables_are_absent_in_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-secret")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "x")
    tools = python_tools(tmp_path, env={"PASSED": "yes"})
    code = (
        "import os\n"
        "for k in ('OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'SOME_OTHER_VARIABLE', 'PASSED'):\n"
        "    print(k, os.environ.get(k))\n"
    )
    result = call(tools, argv=[PY, "-c", code])
    assert "OPENAI_API_KEY None" in result.content
    assert "ANTHROPIC_API_KEY None" in result.content
    assert "SOME_OTHER_VARIABLE None" in result.content
    assert "PASSED yes" in result.content
    assert "sk-" not in result.content


def _namespaces_work() -> bool:
    return asyncio.run(detect_sandbox(refresh=True)).available


CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3).close()\n"
    "    print('CONNECTED')\n"
    "except OSError as error:\n"
    "    print('refused:', error)\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "socket.create_connection(s.getsockname(), timeout=3).close()\n"
    "print('own loopback works')\n"
)


class _Listener:
    """A TCP listener on this machine's 127.0.0.1 that counts the connections it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.skipif(
    not _namespaces_work(), reason="this machine cannot make a network namespace at all"
)
def test_the_sandbox_keeps_a_command_off_the_network(tmp_path: Path) -> None:
    listener = _Listener()
    try:
        sandboxed = call(python_tools(tmp_path), argv=[PY, "-c", CONNECT, str(listener.port)])
        assert not sandboxed.is_error, sandboxed.content
        assert "refused:" in sandboxed.content
        assert "CONNECTED" not in sandboxed.content
        assert "own loopback works" in sandboxed.content  # a test suite's stubs still run
        assert listener.connections == 0
        # The same command without the sandbox does connect: the test can see a connection.
        open_tools = python_tools(tmp_path, sandbox=False)
        reached = call(open_tools, argv=[PY, "-c", CONNECT, str(listener.port)])
        assert "CONNECTED" in reached.content
        deadline = time.monotonic() + 5
        while listener.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.connections == 1
    finally:
        listener.close()


WRITER = (
    "import sys\n"
    "for path in sys.argv[1:]:\n"
    "    try:\n"
    "        open(path, 'a').write('x')\n"
    "        print('wrote', path)\n"
    "    except OSError as error:\n"
    "        print('refused', path, error.strerror)\n"
)


def _files_confined() -> bool:
    return asyncio.run(detect_sandbox()).files


@pytest.mark.skipif(
    not _files_confined(), reason="this machine cannot make a mount namespace for commands"
)
def test_the_sandbox_lets_a_command_write_only_the_workspace_and_not_its_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, outside, scratch = tmp_path / "ws", tmp_path / "outside", tmp_path / "scratch"
    for folder in (workspace / ".git", outside, scratch):
        folder.mkdir(parents=True)
    (workspace / ".git" / "config").write_text("[core]\n")
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # the command's temporary folder
    targets = [
        workspace / "ok.txt",
        workspace / ".git" / "config",
        outside / "x.txt",
        scratch / "t.txt",
    ]
    result = call(python_tools(workspace), argv=[PY, "-c", WRITER, *map(str, targets)])
    assert f"wrote {targets[0]}" in result.content
    assert f"refused {targets[1]} Read-only file system" in result.content
    assert f"refused {targets[2]} Read-only file system" in result.content
    assert f"wrote {targets[3]}" in result.content
    assert (workspace / ".git" / "config").read_text() == "[core]\n"
    assert not (outside / "x.txt").exists()
    assert (workspace / "ok.txt").read_text() == "x"


@pytest.mark.skipif(
    not _files_confined(), reason="this machine cannot make a mount namespace for commands"
)
def test_the_sandbox_lets_a_command_write_a_relative_path_in_the_workspace(
    tmp_path: Path,
) -> None:
    # The command's working folder was entered before the sandbox's bind mounts: a relative
    # path went to the read-only mount underneath ("Read-only file system"; failed before).
    result = call(python_tools(tmp_path), argv=[PY, "-c", WRITER, "rel.txt"])
    assert "wrote rel.txt" in result.content
    assert (tmp_path / "rel.txt").read_text() == "x"


def test_without_a_sandbox_require_sandbox_refuses_and_otherwise_a_warning_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "_found", Sandbox(reason="no unshare here"))
    strict = python_tools(tmp_path, require_sandbox=True)
    refused = call(strict, argv=[PY, "-c", "open('ran', 'w')"])
    assert refused.is_error
    assert "require_sandbox is set and no unshare here" in refused.content
    assert not (tmp_path / "ran").exists()
    lenient = python_tools(tmp_path)
    with caplog.at_level("WARNING", logger="coditect_core.tools.commands"):
        ran = call(lenient, argv=[PY, "-c", "open('ran', 'w')"])
    assert ran.content == "exit code: 0"
    assert (tmp_path / "ran").exists()
    assert "WITH network access: no unshare here" in caplog.text


def test_a_missing_program_is_an_error_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_found", Sandbox(reason="off"))
    result = call(CommandToolset(tmp_path, ["no-such-program-xyz"]), argv=["no-such-program-xyz"])
    assert result.is_error
    assert "not found" in result.content


def test_needs_approval_names_the_tools_given(tmp_path: Path) -> None:
    assert CommandToolset(tmp_path, ["pytest"], approve=["run_command"]).needs_approval(
        "run_command"
    )
    assert not CommandToolset(tmp_path, ["pytest"]).needs_approval("run_command")


def test_the_tool_offered_is_run_command_with_an_argv_list(tmp_path: Path) -> None:
    (tool,) = CommandToolset(tmp_path, ["pytest"]).tools()
    assert tool.name == "run_command"
    assert tool.parameters["properties"]["argv"]["type"] == "array"
    assert tool.parameters["required"] == ["argv"]

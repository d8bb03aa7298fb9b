"""The built-in file tools (tools/files.py), through ``FileToolset.call`` as the agent loop
calls them: results, error results (never exceptions), caps with their markers, .gitignore,
confinement of every path, and the write tools offered only when named."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import ToolArgumentsError
from coditect_core.tools.base import ToolResult
from coditect_core.tools.files import READ_TOOLS, WRITE_TOOLS, FileToolset


def call(toolset: FileToolset, name: str, **arguments: Any) -> ToolResult:
    return asyncio.run(toolset.call(name, arguments))


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("def f():\n    return 1\n\n\ndef g():\n    pass\n")
    (root / "src" / "pkg" / "data.bin").write_bytes(b"\x00\x01\x02binary")
    (root / "README.md").write_text("# Project\nTODO: write\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("TODO: generated\n")
    (root / "notes.log").write_text("TODO: a log\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / ".gitignore").write_text("secret_*.py\n")
    (root / "src" / "secret_x.py").write_text("TODO: hidden\n")
    return root


@pytest.fixture(params=["plain", "git"])
def workspace(request: pytest.FixtureRequest, project: Path) -> Path:
    """The same files as a plain folder and as a git work tree (one file committed)."""
    if request.param == "git":
        git(project, "init", "-q")
        git(project, "add", "README.md")
        git(project, "commit", "-q", "-m", "init")
    return project


def test_the_toolset_offers_read_tools_by_default_and_write_tools_only_when_named(
    project: Path,
) -> None:
    assert [t.name for t in FileToolset(project).tools()] == list(READ_TOOLS)
    named = FileToolset(project, names=["read_file", "edit_file"])
    assert [t.name for t in named.tools()] == ["read_file", "edit_file"]
    refused = call(named, "write_file", path="x", content="y")
    assert refused.is_error
    assert "unknown tool 'write_file'" in refused.content
    assert not (project / "x").exists()
    every = FileToolset(project, names=[*READ_TOOLS, *WRITE_TOOLS])
    schema = {t.name: t.parameters for t in every.tools()}
    assert schema["read_file"]["required"] == ["path"]
    assert set(schema["edit_file"]["properties"]) == {"path", "old_text", "new_text"}


def test_an_unknown_tool_name_is_refused_at_construction(project: Path) -> None:
    with pytest.raises(ToolArgumentsError, match=r"'rm_rf'.*known are read_file"):
        FileToolset(project, names=["read_file", "rm_rf"])


def test_read_file_whole_and_by_line_range(project: Path) -> None:
    tools = FileToolset(project)
    assert call(tools, "read_file", path="src/pkg/mod.py").content.startswith("def f():\n")
    ranged = call(tools, "read_file", path="src/pkg/mod.py", start_line=2, end_line=2)
    assert ranged.content == "    return 1\n"
    past = call(tools, "read_file", path="src/pkg/mod.py", start_line=99)
    assert past.is_error
    assert "past the end" in past.content
    assert "6 lines" in past.content


def test_read_file_caps_output_with_a_marker_saying_where_to_read_on(project: Path) -> None:
    (project / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    tools = FileToolset(project, max_result_chars=100)
    result = call(tools, "read_file", path="long.txt")
    assert not result.is_error
    assert result.content.startswith("line 1\n")
    assert result.content.endswith(
        "line 13\n[... truncated: lines 14-1000 of 1000 not shown; read on with start_line=14]"
    )
    assert call(tools, "read_file", path="long.txt", start_line=14).content.startswith("line 14\n")


def test_read_file_of_a_file_past_the_size_cap_says_so(project: Path) -> None:
    (project / "big.txt").write_text("x\n" * 100)
    result = call(FileToolset(project, max_file_bytes=50), "read_file", path="big.txt")
    assert "larger than 50 bytes" in result.content
    assert "truncated" in result.content


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"path": "src/pkg/data.bin"}, "binary file"),
        ({"path": "nope.txt"}, "no file 'nope.txt'"),
        ({"path": "src"}, "is a folder"),
        ({"path": "../etc/passwd"}, "climbs out"),
        ({"path": "/etc/passwd"}, "absolute path outside"),
        ({"path": "a\x00b"}, "NUL byte"),
        ({"path": 3}, "path"),
        ({}, "path"),
        ({"path": "README.md", "start_line": 0}, "start_line must be 1 or more"),
        ({"path": "README.md", "start_line": 3, "end_line": 2}, "before start_line"),
        ({"path": "README.md", "colour": "red"}, "colour"),
    ],
)
def test_read_file_bad_input_is_an_error_result(
    project: Path, arguments: dict[str, Any], words: str
) -> None:
    result = asyncio.run(FileToolset(project).call("read_file", arguments))
    assert result.is_error
    assert words in result.content
    assert "Traceback" not in result.content


def test_list_files_leaves_out_what_gitignore_ignores(workspace: Path) -> None:
    tools = FileToolset(workspace)
    listed = call(tools, "list_files").content.splitlines()
    assert listed == [
        ".gitignore",
        "README.md",
        "src/.gitignore",
        "src/pkg/data.bin",
        "src/pkg/mod.py",
    ]
    assert call(tools, "list_files", pattern="*.py").content == "src/pkg/mod.py"
    assert call(tools, "list_files", pattern="src/*").content == "src/.gitignore"
    assert call(tools, "list_files", pattern="src/**/*.py").content == "src/pkg/mod.py"
    assert call(tools, "list_files", pattern="*.rs").content == "no files match '*.rs'"


def test_list_files_caps_the_count_with_a_marker(project: Path) -> None:
    for i in range(30):
        (project / f"f{i:02}.txt").write_text("x")
    result = call(FileToolset(project, max_listed_files=10), "list_files", pattern="*.txt")
    lines = result.content.splitlines()
    assert lines[:10] == [f"f{i:02}.txt" for i in range(10)]
    assert lines[10] == "[... truncated: 20 more files not shown; narrow the pattern]"


def test_list_files_does_not_follow_a_symlinked_folder_out(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (project / "out").symlink_to(outside, target_is_directory=True)
    (project / "out_file").symlink_to(outside / "secret.txt")
    listed = call(FileToolset(project), "list_files").content
    assert "secret" not in listed
    assert "out_file" not in listed


def test_search_finds_lines_in_files_not_ignored(workspace: Path) -> None:
    result = call(FileToolset(workspace), "search", pattern=r"TODO: \w+")
    assert result.content == "README.md:2: TODO: write"
    defs = call(FileToolset(workspace), "search", pattern="^def ", glob="*.py")
    assert defs.content == "src/pkg/mod.py:1: def f():\nsrc/pkg/mod.py:5: def g():"
    assert call(FileToolset(workspace), "search", pattern="todo", ignore_case=True).content
    nothing = call(FileToolset(workspace), "search", pattern="zzz")
    assert not nothing.is_error
    assert nothing.content == "no match for 'zzz'"


def test_search_caps_matches_with_a_marker(project: Path) -> None:
    (project / "many.txt").write_text("hit\n" * 50)
    result = call(FileToolset(project, max_matches=5), "search", pattern="hit")
    lines = result.content.splitlines()
    assert lines[:5] == [f"many.txt:{i}: hit" for i in range(1, 6)]
    assert lines[5] == "[... truncated: 45 more matches not shown; narrow the search]"


def test_search_with_a_bad_regex_is_an_error_result(project: Path) -> None:
    result = call(FileToolset(project), "search", pattern="(unclosed")
    assert result.is_error
    assert "bad regular expression '(unclosed'" in result.content


# -- write tools ----------------------------------------------------------------------------


def writer(root: Path) -> FileToolset:
    return FileToolset(root, names=[*READ_TOOLS, *WRITE_TOOLS])


def test_write_file_creates_and_replaces(project: Path) -> None:
    tools = writer(project)
    result = call(tools, "write_file", path="new/dir/x.py", content="x = 1\n")
    assert not result.is_error
    assert result.content == "created new/dir/x.py (6 bytes)"
    assert (project / "new" / "dir" / "x.py").read_text() == "x = 1\n"
    assert call(tools, "write_file", path="README.md", content="hi\n").content.startswith(
        "replaced"
    )
    assert (project / "README.md").read_text() == "hi\n"


def test_edit_file_replaces_text_found_once(project: Path) -> None:
    tools = writer(project)
    result = call(
        tools, "edit_file", path="src/pkg/mod.py", old_text="return 1", new_text="return 2"
    )
    assert not result.is_error, result.content
    assert "return 2" in (project / "src" / "pkg" / "mod.py").read_text()


def test_edit_file_fails_clearly_when_not_found_or_not_unique(project: Path) -> None:
    tools = writer(project)
    before = (project / "src" / "pkg" / "mod.py").read_text()
    missing = call(tools, "edit_file", path="src/pkg/mod.py", old_text="nope", new_text="x")
    assert missing.is_error
    assert "old_text was not found in 'src/pkg/mod.py'" in missing.content
    twice = call(tools, "edit_file", path="src/pkg/mod.py", old_text="def ", new_text="async def ")
    assert twice.is_error
    assert "found 2 times" in twice.content
    empty = call(tools, "edit_file", path="src/pkg/mod.py", old_text="", new_text="x")
    assert empty.is_error
    assert "old_text is empty" in empty.content
    assert (project / "src" / "pkg" / "mod.py").read_text() == before


PATCH = """\
--- a/src/pkg/mod.py
+++ b/src/pkg/mod.py
@@ -1,3 +1,3 @@
 def f():
-    return 1
+    return 42
\x20
--- /dev/null
+++ b/added.txt
@@ -0,0 +1 @@
+new file
"""


def test_apply_patch_applies_a_unified_diff(workspace: Path) -> None:
    tools = writer(workspace)
    result = call(tools, "apply_patch", patch=PATCH)
    assert not result.is_error, result.content
    assert "return 42" in (workspace / "src" / "pkg" / "mod.py").read_text()
    assert (workspace / "added.txt").read_text() == "new file\n"


def test_apply_patch_without_git_prefixes(project: Path) -> None:
    patch = PATCH.replace("a/src", "src").replace("b/src", "src").replace("b/added", "added")
    result = call(writer(project), "apply_patch", patch=patch)
    assert not result.is_error, result.content
    assert (project / "added.txt").exists()


def test_apply_patch_that_does_not_apply_changes_nothing(project: Path) -> None:
    bad = PATCH.replace("-    return 1", "-    return 7")
    result = call(writer(project), "apply_patch", patch=bad)
    assert result.is_error
    assert "does not apply; nothing changed" in result.content
    assert not (project / "added.txt").exists()
    assert "return 1" in (project / "src" / "pkg" / "mod.py").read_text()


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("../outside.txt", "climbs out"),
        (".git/config", "'.git' is never written"),
        ("/tmp/abs.txt", "absolute path outside"),
    ],
)
def test_apply_patch_refuses_a_path_outside_before_running_git(
    workspace: Path, target: str, words: str
) -> None:
    patch = f"--- /dev/null\n+++ {target}\n@@ -0,0 +1 @@\n+pwned\n"
    before = (workspace / ".git" / "config").read_bytes() if (workspace / ".git").is_dir() else b""
    result = call(writer(workspace), "apply_patch", patch=patch)
    assert result.is_error
    assert words in result.content
    assert not (workspace.parent / "outside.txt").exists()
    assert not Path("/tmp/abs.txt").exists()
    if before:
        assert (workspace / ".git" / "config").read_bytes() == before


def test_apply_patch_refuses_a_symlink(project: Path) -> None:
    patch = (
        "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n"
        "@@ -0,0 +1 @@\n+/etc\n\\ No newline at end of file\n"
    )
    result = call(writer(project), "apply_patch", patch=patch)
    assert result.is_error
    assert "symlink" in result.content
    assert not (project / "l").exists()


def test_delete_file(project: Path) -> None:
    tools = writer(project)
    assert call(tools, "delete_file", path="README.md").content == "deleted README.md"
    assert not (project / "README.md").exists()
    folder = call(tools, "delete_file", path="src")
    assert folder.is_error
    assert "is a directory" in folder.content
    assert (project / "src").is_dir()


@pytest.mark.parametrize("name", ["write_file", "delete_file"])
@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside.txt", "climbs out"),
        (".git/config", "'.git' is never written"),
        ("escape/outside.txt", "symlink leads outside"),
    ],
)
def test_write_tools_refuse_paths_out_and_write_nothing_there(
    project: Path, name: str, path: str, words: str
) -> None:
    (project / ".git").mkdir()
    (project / ".git" / "config").write_text("[core]\n")
    (project.parent / "outside.txt").write_text("untouched\n")
    (project / "escape").symlink_to(project.parent, target_is_directory=True)
    arguments = {"path": path, "content": "pwned"} if name == "write_file" else {"path": path}
    result = asyncio.run(writer(project).call(name, arguments))
    assert result.is_error
    assert words in result.content, result.content
    assert result.content.startswith(f"{name}: path {path!r} refused")
    assert (project.parent / "outside.txt").read_text() == "untouched\n"
    assert (project / ".git" / "config").read_text() == "[core]\n"


def test_needs_approval_names_the_tools_given(project: Path) -> None:
    tools = FileToolset(project, names=["read_file", "delete_file"], approve=["delete_file"])
    assert tools.needs_approval("delete_file")
    assert not tools.needs_approval("read_file")


def test_apply_patch_with_miscounted_hunks_is_recounted(project: Path) -> None:
    """Models miscount hunk lengths: a patch that fails as written is tried again recounted."""
    one_file = PATCH.split("--- /dev/null")[0]
    miscounted = one_file.replace("@@ -1,3 +1,3 @@", "@@ -1,7 +1,9 @@")
    result = call(writer(project), "apply_patch", patch=miscounted)
    assert not result.is_error, result.content
    assert "return 42" in (project / "src" / "pkg" / "mod.py").read_text()


def test_read_file_of_a_fifo_is_refused_without_blocking(project: Path) -> None:
    """A FIFO (a command may make one) would block an open() for ever: only regular files
    are read."""
    import os

    os.mkfifo(project / "pipe")
    result = asyncio.run(
        asyncio.wait_for(FileToolset(project).call("read_file", {"path": "pipe"}), 10)
    )
    assert result.is_error
    assert "not a regular file" in result.content
    edit = asyncio.run(
        asyncio.wait_for(
            writer(project).call("edit_file", {"path": "pipe", "old_text": "a", "new_text": "b"}),
            10,
        )
    )
    assert edit.is_error


def test_results_cut_by_a_marker_are_flagged_truncated(project: Path) -> None:
    (project / "long.txt").write_text("hit\n" * 100)
    tools = FileToolset(project, max_result_chars=50, max_listed_files=1, max_matches=2)
    assert call(tools, "read_file", path="long.txt").truncated
    assert call(tools, "list_files").truncated
    assert call(tools, "search", pattern="hit").truncated
    assert not call(tools, "read_file", path="README.md").truncated


@pytest.mark.timeout(60)
def test_search_with_a_catastrophic_regex_stops_at_its_time_limit(project: Path) -> None:
    """(a|aa)+$ on forty a's backtracks for ages: the search stops at its limit and says so
    instead of holding a thread (and the run's exit) for ever."""
    (project / "slow.txt").write_text("ok a\n" + "a" * 40 + "!\n")
    tools = FileToolset(project, search_timeout_s=0.5)
    started = time.monotonic()
    result = call(tools, "search", pattern="(a|aa)+$", glob="slow.txt")
    assert time.monotonic() - started < 30
    assert result.truncated
    assert "slow.txt:1: ok a" in result.content
    assert "[... truncated: the search stopped after 0.5s" in result.content


def test_edit_file_refuses_a_file_that_is_not_utf8_instead_of_mangling_it(project: Path) -> None:
    latin = "caf\xe9 = 1\nx = 2\n".encode("latin-1")
    (project / "latin.py").write_bytes(latin)
    result = call(writer(project), "edit_file", path="latin.py", old_text="x = 2", new_text="x = 3")
    assert result.is_error
    assert "not UTF-8" in result.content
    assert (project / "latin.py").read_bytes() == latin


def test_apply_patch_renames_and_deletes_as_git_diff_writes_them(project: Path) -> None:
    patch = (
        "diff --git a/README.md b/README.md\ndeleted file mode 100644\n--- a/README.md\n"
        "+++ /dev/null\n@@ -1,2 +0,0 @@\n-# Project\n-TODO: write\n"
        "diff --git a/notes.log b/docs/notes.log\nsimilarity index 100%\n"
        "rename from notes.log\nrename to docs/notes.log\n"
    )
    result = call(writer(project), "apply_patch", patch=patch)
    assert not result.is_error, result.content
    assert result.content == "patch applied to README.md, docs/notes.log, notes.log"
    assert not (project / "README.md").exists()
    assert (project / "docs" / "notes.log").read_text() == "TODO: a log\n"


def test_apply_patch_refuses_a_rename_out_of_the_workspace(project: Path) -> None:
    patch = (
        "diff --git a/notes.log b/../moved.log\nsimilarity index 100%\n"
        "rename from notes.log\nrename to ../moved.log\n"
    )
    result = call(writer(project), "apply_patch", patch=patch)
    assert result.is_error
    assert "climbs out" in result.content
    assert (project / "notes.log").exists()
    assert not (project.parent / "moved.log").exists()


def test_list_files_and_search_stay_within_the_result_size_with_their_own_marker(
    project: Path,
) -> None:
    """Long paths: the answer stops before the size cap with a count of what is left, rather
    than being cut mid-path by the generic cap."""
    folder = project / ("d" * 60)
    folder.mkdir()
    for i in range(50):
        (folder / f"{'f' * 60}{i:02}.txt").write_text("needle\n")
    tools = FileToolset(project, max_result_chars=1000)
    listed = call(tools, "list_files", pattern="*.txt")
    assert listed.truncated
    assert len(listed.content) < 1100
    lines = listed.content.splitlines()
    assert all(line.startswith("d" * 60) for line in lines[:-1])
    assert (
        lines[-1]
        == f"[... truncated: {50 - len(lines) + 1} more files not shown; narrow the pattern]"
    )
    found = call(tools, "search", pattern="needle")
    assert found.truncated
    assert len(found.content) < 1100
    assert found.content.splitlines()[-1].endswith("more matches not shown; narrow the search]")


def test_parallel_edits_of_one_file_are_all_kept(project: Path) -> None:
    """A model may ask for several edits of one file in one turn; the loop runs them at once.
    Each must see the file as the one before it left it: no edit lost."""
    (project / "many.py").write_text("".join(f"v{i} = 0\n" for i in range(30)))
    tools = writer(project)

    async def all_at_once() -> list[ToolResult]:
        return await asyncio.gather(
            *(
                tools.call(
                    "edit_file",
                    {"path": "many.py", "old_text": f"v{i} = 0", "new_text": f"v{i} = 1"},
                )
                for i in range(30)
            )
        )

    results = asyncio.run(all_at_once())
    assert not [r.content for r in results if r.is_error]
    assert (project / "many.py").read_text() == "".join(f"v{i} = 1\n" for i in range(30))

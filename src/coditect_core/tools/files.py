"""The built-in file tools, confined to one workspace folder: :class:`FileToolset`.

Read-only tools (:data:`READ_TOOLS`): ``read_file`` (a line range, capped, a clear "truncated"
marker; binary files refused), ``list_files`` (a glob; what ``.gitignore`` ignores is left out),
``search`` (a regular expression over the files' text, capped, stopped at a time limit). Write tools
(:data:`WRITE_TOOLS`, offered only when named): ``write_file``, ``edit_file`` (exact search and
replace, the text must occur once), ``apply_patch`` (a unified diff, through ``git apply``),
``delete_file``. Every path goes through :class:`~.paths.ConfinedRoot`; a refused path, bad
arguments or a failure is an error result for the model, never an exception.

Which files a workspace has, and glob matching, are :mod:`.listing`'s.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import PathConfinementError, ToolArgumentsError, ToolError
from ..llm_abstractions.process import command_environment
from ..llm_abstractions.tool_types import Tool
from .base import DEFAULT_MAX_RESULT_CHARS, FunctionToolset, ToolResult, Toolset
from .listing import glob_matches, glob_regex, workspace_files
from .paths import ConfinedRoot

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_LISTED_FILES",
    "DEFAULT_MAX_MATCHES",
    "DEFAULT_SEARCH_TIMEOUT_S",
    "READ_TOOLS",
    "WRITE_TOOLS",
    "FileToolset",
]

READ_TOOLS: tuple[str, ...] = ("read_file", "list_files", "search")
"""The read-only built-in tools (issue 14)."""

WRITE_TOOLS: tuple[str, ...] = ("write_file", "edit_file", "apply_patch", "delete_file")
"""The built-in tools that change files (issue 15); offered only when an agent names them."""

DEFAULT_MAX_FILE_BYTES = 2 << 20
"""The largest file ``read_file`` reads, ``edit_file`` edits and ``search`` looks into (2 MiB)."""

DEFAULT_MAX_LISTED_FILES = 1000
"""How many paths ``list_files`` gives before its "truncated" marker."""

DEFAULT_MAX_MATCHES = 200
"""How many matching lines ``search`` gives before its "truncated" marker."""

DEFAULT_SEARCH_TIMEOUT_S = 20.0
"""How long one ``search`` may take; a regular expression that backtracks for ages is stopped
there (through the ``regex`` module's match timeout) instead of holding its thread."""

_TRUNCATED = "[... truncated: "  # the start of every marker of a cut answer
_BINARY_SNIFF = 8192  # a NUL byte in a file's first bytes: binary, as git and grep decide
_MAX_LINE_CHARS = 400  # a matching line is shortened to this in ``search``
_GIT_TIMEOUT_S = 60.0


class FileToolset(Toolset):
    """The built-in file tools named in ``names`` (default :data:`READ_TOOLS`), confined to
    ``root``: ``FileToolset(workspace, names=["read_file", "write_file"])``.

    A name that is not in :data:`READ_TOOLS` or :data:`WRITE_TOOLS` is refused with a
    :class:`~coditect_core.errors.ToolArgumentsError`. ``approve`` names the tools whose calls
    need a person's approval first (:meth:`needs_approval`); the agent loop does the hand-off.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        names: Iterable[str] | None = None,
        *,
        approve: Iterable[str] = (),
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_listed_files: int = DEFAULT_MAX_LISTED_FILES,
        max_matches: int = DEFAULT_MAX_MATCHES,
        search_timeout_s: float = DEFAULT_SEARCH_TIMEOUT_S,
        name: str = "files",
    ) -> None:
        self.name = name
        self.confined = ConfinedRoot(root)
        self.root = self.confined.root
        wanted = list(READ_TOOLS if names is None else names)
        known = (*READ_TOOLS, *WRITE_TOOLS)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ToolArgumentsError(
                f"unknown built-in file tool(s) {', '.join(map(repr, unknown))}: "
                f"known are {', '.join(known)}",
                tool=unknown[0],
            )
        self.names: tuple[str, ...] = tuple(dict.fromkeys(wanted))
        self.approve = frozenset(approve)
        self.max_result_chars = max_result_chars
        self.max_file_bytes = max_file_bytes
        self.max_listed_files = max_listed_files
        self.max_matches = max_matches
        self.search_timeout_s = search_timeout_s
        self._write_lock = threading.Lock()
        self._functions = FunctionToolset(
            [self._serialized(n) if n in WRITE_TOOLS else getattr(self, n) for n in self.names],
            name=name,
            max_result_chars=max_result_chars + 500,  # room for our own markers
        )

    def tools(self) -> list[Tool]:
        return self._functions.tools()

    def _serialized(self, name: str) -> Callable[..., str]:
        """Write tool ``name``, run one at a time: parallel edits of one file each see the
        file as the one before left it."""
        method: Callable[..., str] = getattr(self, name)

        @functools.wraps(method)
        def serialized(*args: Any, **kwargs: Any) -> str:
            with self._write_lock:
                return method(*args, **kwargs)

        return serialized

    def needs_approval(self, name: str) -> bool:
        """Whether a call of tool ``name`` waits for a person's approval."""
        return name in self.approve

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        if name not in self.names:
            return ToolResult.error(
                f"unknown tool {name!r}: this agent may use {', '.join(self.names)}"
            )
        result = await self._functions.call(name, arguments)
        if not result.is_error and _TRUNCATED in result.content:
            return ToolResult(result.content, truncated=True)
        if result.is_error:  # "read_file failed: PathConfinementError: x" -> "read_file: x"
            prefix = f"{name} failed: "
            text = result.content
            for kind in ("PathConfinementError", "ToolArgumentsError", "ToolError"):
                if text.startswith(f"{prefix}{kind}: "):
                    return ToolResult.error(f"{name}: {text[len(prefix) + len(kind) + 2 :]}")
        return result

    # -- read-only tools ----------------------------------------------------------------------

    def read_file(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        """Read a text file of the workspace. `path` is relative to the workspace folder;
        `start_line` and `end_line` (1-based, inclusive) choose a range of lines. Long output
        is cut with a marker saying which line to read on from."""
        if start_line < 1:
            raise ToolArgumentsError("start_line must be 1 or more", tool="read_file")
        if end_line is not None and end_line < start_line:
            raise ToolArgumentsError(
                f"end_line ({end_line}) is before start_line ({start_line})", tool="read_file"
            )
        text, complete = self._read_text(path, tool="read_file")
        lines = text.splitlines(keepends=True)
        total = len(lines)
        if start_line > max(total, 1):
            raise ToolArgumentsError(
                f"start_line {start_line} is past the end of {path!r} ({total} lines)",
                tool="read_file",
            )
        last = total if end_line is None else min(end_line, total)
        out: list[str] = []
        size = 0
        for number in range(start_line, last + 1):
            line = lines[number - 1]
            if size + len(line) > self.max_result_chars and out:
                shown = "".join(out)
                return (
                    shown
                    + ("" if shown.endswith("\n") else "\n")
                    + (
                        f"[... truncated: lines {number}-{last} of {total} not shown; "
                        f"read on with start_line={number}]"
                    )
                )
            out.append(line)
            size += len(line)
        body = "".join(out)
        if len(body) > self.max_result_chars:  # one huge line
            body = body[: self.max_result_chars] + (
                f"\n[... truncated: line {start_line} is {len(body)} characters long]"
            )
        if not complete:
            body += (
                f"\n[... truncated: the file is larger than {self.max_file_bytes} bytes; "
                "only its beginning was read]"
            )
        return body

    def list_files(self, pattern: str = "*") -> str:
        """List the workspace's files (paths relative to it) matching a glob `pattern`:
        `*` matches within one path component, `**` across folders; a pattern without `/`
        matches file names at any depth (`*.py`). Files that .gitignore ignores are left out."""
        regex = glob_regex(pattern)
        paths = [p for p in self._all_files() if glob_matches(regex, pattern, p)]
        if not paths:
            return f"no files match {pattern!r}"
        shown = _fitting(paths[: self.max_listed_files], self.max_result_chars)
        text = "\n".join(shown)
        if len(paths) > len(shown):
            text += (
                f"\n[... truncated: {len(paths) - len(shown)} more files not shown; "
                "narrow the pattern]"
            )
        return text

    def search(self, pattern: str, glob: str = "*", ignore_case: bool = False) -> str:
        """Search the workspace's text files for a regular expression (Python syntax), line by
        line; `glob` narrows the files as in list_files. Answers `path:line: text` per match."""
        import regex as regex_module  # lazy: only search needs it (its matches can time out)

        try:
            regex = regex_module.compile(pattern, regex_module.IGNORECASE if ignore_case else 0)
        except (regex_module.error, ValueError) as error:
            raise ToolArgumentsError(
                f"bad regular expression {pattern!r}: {error}", tool="search"
            ) from None
        file_regex = glob_regex(glob)
        deadline = time.monotonic() + self.search_timeout_s
        matches: list[str] = []
        size = more = 0
        stopped = False
        for rel in self._all_files():
            if stopped:
                break
            if not glob_matches(file_regex, glob, rel):
                continue
            try:
                text, _ = self._read_text(rel, tool="search")
            except ToolError:  # binary, too large, vanished: not searched
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                left = deadline - time.monotonic()
                try:
                    if left <= 0 or not regex.search(line, timeout=left):
                        stopped = left <= 0
                        if stopped:
                            break
                        continue
                except TimeoutError:
                    stopped = True
                    break
                if len(line) > _MAX_LINE_CHARS:
                    line = line[:_MAX_LINE_CHARS] + " [...]"
                entry = f"{rel}:{number}: {line}"
                if len(matches) < self.max_matches and size + len(entry) < self.max_result_chars:
                    matches.append(entry)
                    size += len(entry) + 1
                else:
                    more += 1
        text = "\n".join(matches) if matches else f"no match for {pattern!r}"
        if stopped:
            text += (
                f"\n[... truncated: the search stopped after {self.search_timeout_s:g}s; "
                "the expression is too slow or the files too many: simplify it or narrow glob]"
            )
        elif more:
            text += f"\n[... truncated: {more} more matches not shown; narrow the search]"
        return text

    # -- write tools --------------------------------------------------------------------------

    def write_file(self, path: str, content: str) -> str:
        """Write `content` to the file `path` (relative to the workspace), replacing it if it
        exists; missing folders are created."""
        data = content.encode("utf-8")
        created = self.confined.write_bytes(path, data, tool="write_file")
        return f"{'created' if created else 'replaced'} {path} ({len(data)} bytes)"

    def edit_file(self, path: str, old_text: str, new_text: str) -> str:
        """Replace `old_text` by `new_text` in the file `path`. `old_text` must occur exactly
        once, character for character (include enough surrounding lines to make it unique)."""
        if not old_text:
            raise ToolArgumentsError(
                "old_text is empty: say which text to replace", tool="edit_file"
            )
        self.confined.resolve(path, write=True, tool="edit_file")
        text, complete = self._read_text(path, tool="edit_file", strict=True)
        if not complete:
            raise ToolError(
                f"{path!r} is larger than {self.max_file_bytes} bytes: not edited",
                tool="edit_file",
            )
        count = text.count(old_text)
        if count == 0:
            raise ToolError(
                f"old_text was not found in {path!r}; nothing changed", tool="edit_file"
            )
        if count > 1:
            raise ToolError(
                f"old_text was found {count} times in {path!r}; it must occur once: include "
                "more surrounding text. Nothing changed",
                tool="edit_file",
            )
        self.confined.write_bytes(path, text.replace(old_text, new_text).encode(), tool="edit_file")
        return f"edited {path}: 1 replacement"

    def apply_patch(self, patch: str) -> str:
        """Apply a unified diff (as `git diff` or `diff -u` writes it) to the workspace. It
        applies whole or not at all; paths are relative to the workspace folder."""
        if not patch.strip():
            raise ToolArgumentsError("the patch is empty", tool="apply_patch")
        paths, strip = _patch_paths(patch)
        if not paths:
            raise ToolArgumentsError(
                "no file names found in the patch: give a unified diff with ---/+++ lines",
                tool="apply_patch",
            )
        for path in paths:
            self.confined.resolve(path, write=True, tool="apply_patch")
        if re.search(r"^(new file mode|new mode|old mode) (120000|160000)", patch, re.M):
            raise ToolArgumentsError(
                "the patch makes a symlink or a submodule: refused", tool="apply_patch"
            )
        if not patch.endswith("\n"):
            patch += "\n"
        env = command_environment()
        # git finds no repository above the workspace: it patches the files as plain files
        # there, and as a work tree when the workspace is one's top folder.
        env["GIT_CEILING_DIRECTORIES"] = str(self.root.parent)
        # As written first; then with the hunks' line counts recounted (models miscount).
        first = _git_apply(self.root, patch, [f"-p{strip}"], env)
        if first is not None:
            second = _git_apply(self.root, patch, [f"-p{strip}", "--recount"], env)
            if second is not None:
                raise ToolError(
                    f"the patch does not apply; nothing changed:\n{first}", tool="apply_patch"
                )
        return f"patch applied to {', '.join(sorted(paths))}"

    def delete_file(self, path: str) -> str:
        """Delete the file `path` (relative to the workspace). Folders are not deleted."""
        self.confined.unlink(path, tool="delete_file")
        return f"deleted {path}"

    # -- helpers ------------------------------------------------------------------------------

    def _read_text(self, path: str, *, tool: str, strict: bool = False) -> tuple[str, bool]:
        """The text of file ``path`` (at most :attr:`max_file_bytes`) and whether it was read
        whole; a folder, a missing file or a binary file is a :class:`ToolError`, and so, when
        ``strict`` (to write it back), is text that is not UTF-8."""
        resolved = self.confined.resolve(path, tool=tool)
        if resolved.is_dir():
            raise ToolError(f"{path!r} is a folder: use list_files", tool=tool)
        try:
            fd = self.confined.open_read(path, tool=tool)  # a FIFO does not block it
        except FileNotFoundError:
            raise ToolError(f"no file {path!r} in the workspace", tool=tool) from None
        except OSError as error:
            raise ToolError(f"{path!r} cannot be read: {error.strerror}", tool=tool) from None
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ToolError(f"{path!r} is not a regular file: not read", tool=tool)
            os.set_blocking(fd, True)
            data = stream.read(self.max_file_bytes + 1)
        if b"\x00" in data[:_BINARY_SNIFF]:
            raise ToolError(f"{path!r} is a binary file: not shown", tool=tool)
        complete = len(data) <= self.max_file_bytes
        if strict and complete:  # (an incomplete read is refused by the caller)
            try:
                return data.decode("utf-8"), complete
            except UnicodeDecodeError as error:
                raise ToolError(
                    f"{path!r} is not UTF-8 text (byte {error.start}): not changed, to not "
                    "damage it; use apply_patch or write_file",
                    tool=tool,
                ) from None
        return data[: self.max_file_bytes].decode("utf-8", "replace"), complete

    def _all_files(self) -> list[str]:
        """Every file of the workspace not ignored by .gitignore, relative, sorted (a symlink
        out is left out)."""
        out: list[str] = []
        for rel in workspace_files(self.root):
            try:
                self.confined.resolve(rel)
            except PathConfinementError:
                continue
            out.append(rel)
        return out


def _fitting(lines: list[str], limit: int) -> list[str]:
    """The first of ``lines`` whose text (joined by newlines) stays within ``limit`` characters."""
    size = 0
    for count, line in enumerate(lines):
        size += len(line) + 1
        if size > limit:
            return lines[:count]
    return lines


def _git_apply(root: Path, patch: str, options: list[str], env: dict[str, str]) -> str | None:
    """Apply ``patch`` with ``git apply`` in ``root`` (whole or not at all): ``None`` when it
    applied, else git's complaint."""
    try:
        done = subprocess.run(
            ["git", "apply", *options, "--verbose", "-"],
            input=patch.encode(),
            cwd=root,
            env=env,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(
            "apply_patch needs git, which is not installed", tool="apply_patch"
        ) from None
    except subprocess.TimeoutExpired:
        raise ToolError("git apply did not finish in time", tool="apply_patch") from None
    if done.returncode == 0:
        return None
    return (done.stderr + done.stdout).decode("utf-8", "replace").strip()


def _patch_paths(patch: str) -> tuple[set[str], int]:
    """The paths a unified diff touches (old and new names, ``/dev/null`` left out) and how
    many leading components to strip (1 when every name has git's ``a/`` ``b/`` prefix)."""
    raw: list[str] = []
    for line in patch.splitlines():
        for head in ("--- ", "+++ "):
            if line.startswith(head):
                name = line[len(head) :].split("\t")[0].strip()
                if name.startswith('"') and name.endswith('"'):
                    name = name[1:-1]
                if name and name != "/dev/null":
                    raw.append(name)
        for head in ("rename from ", "rename to ", "copy from ", "copy to "):
            if line.startswith(head):
                raw.append("a/" + line[len(head) :].strip())
        if line.startswith("diff --git "):
            raw.extend(line[len("diff --git ") :].split())
    strip = 1 if raw and all(n.startswith(("a/", "b/")) for n in raw) else 0
    return {str(PurePosixPath(*PurePosixPath(n).parts[strip:])) for n in raw}, strip

"""Which files a workspace has, and glob matching over their paths.

:func:`workspace_files` asks git when the folder is in a git work tree (``git ls-files --cached
--others --exclude-standard``: tracked and untracked files, not what ``.gitignore`` ignores);
elsewhere it walks the folder (symlinked folders not entered, ``.git`` skipped) and reads each
``.gitignore`` on the way through ``pathspec``, the gitignore matcher. :func:`glob_regex` and
:func:`glob_matches` are the globs of the ``list_files`` and ``search`` tools.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ToolArgumentsError
from ..llm_abstractions.process import command_environment

__all__ = ["glob_matches", "glob_regex", "workspace_files"]

_GIT_TIMEOUT_S = 60.0


def workspace_files(root: Path) -> list[str]:
    """The regular files under ``root`` (relative POSIX paths, sorted) that ``.gitignore``
    does not ignore; nothing under a ``.git``."""
    listed = _git_files(root)
    if listed is None:
        listed = _walked_files(root)
    out = {
        rel
        for rel in listed
        if not any(part.casefold() == ".git" for part in PurePosixPath(rel).parts)
        and (root / rel).is_file()  # listed by git but deleted since, or a link to a folder
    }
    return sorted(out)


def _git_files(root: Path) -> list[str] | None:
    """The files git sees under ``root`` (tracked and untracked, not ignored), or ``None``
    when ``root`` is not in a git work tree (or git is missing)."""
    try:
        done = subprocess.run(
            [
                "git",
                "-c",
                "core.fsmonitor=false",  # a model-written config must not run a program here
                "ls-files",
                "--cached",
                "--others",
                "--exclude-standard",
                "-z",
            ],
            cwd=root,
            env=command_environment(),
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [p for p in done.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walked_files(root: Path) -> list[str]:
    """The files under ``root`` (symlinked folders not entered, ``.git`` skipped) that no
    ``.gitignore`` on their way ignores."""
    import pathspec

    specs: list[tuple[str, Any]] = []  # (folder relative to root, its .gitignore's spec)
    out: list[str] = []

    def ignored(rel: str, is_dir: bool) -> bool:
        for base, spec in specs:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False

    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        rel_folder = "" if rel_folder == "." else rel_folder
        ignore_file = Path(folder) / ".gitignore"
        if ignore_file.is_file():
            lines = ignore_file.read_text("utf-8", "replace").splitlines()
            specs.append((rel_folder, pathspec.GitIgnoreSpec.from_lines(lines)))
        prefix = f"{rel_folder}/" if rel_folder else ""
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignored(prefix + d, True))
        out.extend(prefix + f for f in files if not ignored(prefix + f, False))
    return out


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regular expression over a relative POSIX path: ``**`` crosses folders,
    ``*`` and ``?`` do not, ``[...]`` is a set."""
    if not isinstance(pattern, str) or not pattern.strip() or "\x00" in pattern:
        raise ToolArgumentsError(f"bad glob pattern {pattern!r}", tool="list_files")
    pattern = pattern.strip().removeprefix("./")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error:
        raise ToolArgumentsError(f"bad glob pattern {pattern!r}", tool="list_files") from None


def glob_matches(regex: re.Pattern[str], pattern: str, path: str) -> bool:
    """Whether ``path`` matches the glob ``pattern`` (compiled to ``regex``): a pattern without
    ``/`` is matched against the file's name, at any depth."""
    if "/" not in pattern.strip().removeprefix("./"):
        return regex.match(PurePosixPath(path).name) is not None
    return regex.match(path) is not None

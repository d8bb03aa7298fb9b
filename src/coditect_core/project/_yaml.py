"""Read a project file's YAML safely: size limit, duplicate keys refused, a line for every field.

``yaml.safe_load`` semantics (no Python objects, no custom tags), through a ``SafeLoader``
subclass that refuses duplicate mapping keys (PyYAML silently keeps the last) and knows the
line of every mapping key and sequence item, so later errors can name ``file:line``. Anchors
and aliases work; a document that aliases its way past :data:`MAX_VALUES` values (a "billion
laughs" file) is refused before anything walks it.

Reading stays linear and quick on large files (a 100,000-task file is 8 MB): the lines are
found only when an error asks for one (:class:`LineMap` parses the text again then), values are
counted only in a document that has aliases, a document without aliases is built directly
(:meth:`ProjectLoader.construct_tree`), and CPython's cyclic garbage collector is paused while
the document is built (:func:`paused_gc`).
"""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from ..errors import ProjectFileError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "FieldPath",
    "LineMap",
    "format_path",
    "paused_gc",
    "read_yaml",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_VALUES = 1_000_000

FieldPath = tuple[Hashable, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def format_path(path: FieldPath) -> str:
    """``("tasks", 3, "dependencies", 0)`` -> ``tasks[3].dependencies[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "<top level>"


@contextmanager
def paused_gc() -> Iterator[None]:
    """CPython's cyclic garbage collector paused for the block (as it was after it).

    Building a document makes objects by the million for a large file (nodes, then values, then
    models), none of them in a cycle; each full collection the allocations trigger walks all of
    them, which made reading a 100,000-task file five times slower."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class LineMap:
    """Field path -> 1-based line of the key (mapping entry) or item (sequence entry).

    Made from ``text``, the map is built the first time a line is asked for (an error to
    report), by parsing the text again: a file read without a problem never pays for it."""

    def __init__(self, text: str | None = None) -> None:
        self._text = text
        self._lines: dict[FieldPath, int] | None = None if text is not None else {}

    def add(self, path: FieldPath, line: int) -> None:
        self._table().setdefault(path, line)

    def _table(self) -> dict[FieldPath, int]:
        if self._lines is None:
            self._lines = _lines_of(self._text or "")
            self._text = None
        return self._lines

    def line(self, path: FieldPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        lines = self._table()
        path = tuple(path)
        while True:
            try:
                found = lines.get(path)
            except TypeError:  # an unhashable part in a pydantic location
                found = None
            if found is not None or not path:
                return found
            path = path[:-1]


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, node: yaml.Node, first_line: int, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.node, self.first_line, self.line = key, node, first_line, line


class _TooLargeError(Exception):
    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.line = node.start_mark.line + 1


# libyaml's parser when PyYAML was built with it (about 20x faster on a large file), else the
# pure-Python one; the constructor is SafeConstructor either way: yaml.safe_load semantics.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ProjectLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """A safe loader that refuses duplicate keys and records where every field is."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines = LineMap()
        self.node_paths: dict[int, FieldPath] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # keys merged from an anchor may be overridden: that is YAML
                key = (
                    key_node.value  # a plain string key (nearly all): no constructor
                    if key_node.tag == _STR_TAG and isinstance(key_node, yaml.ScalarNode)
                    else self.construct_object(key_node, deep=True)
                )
                if not isinstance(key, Hashable):
                    continue  # SafeConstructor reports unhashable keys itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKeyError(key, node, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_tree(self, node: yaml.Node) -> Any:
        """``node``'s value, as :meth:`construct_document` makes it, for a document without
        aliases (no node is shared): strings, lists and mappings of string keys (duplicates
        refused the same way) built directly, without the constructor's bookkeeping per node
        (three times faster); any other node (numbers, booleans, null, merge keys, tags) by the
        constructor itself."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
        elif isinstance(node, yaml.SequenceNode):
            if node.tag == _SEQ_TAG:
                return [self.construct_tree(item) for item in node.value]
        elif node.tag == _MAP_TAG and all(
            k.tag == _STR_TAG and isinstance(k, yaml.ScalarNode) for k, _ in node.value
        ):
            out: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in lines:
                    raise _DuplicateKeyError(key, node, lines[key], line)
                lines[key] = line
                out[key] = self.construct_tree(value_node)
            return out
        return self.construct_object(node, deep=True)

    def record(self, root: yaml.Node) -> None:
        """Record lines and paths of ``root``'s tree (an alias: once, where its anchor is)."""
        self.lines.add((), root.start_mark.line + 1)
        stack: list[tuple[yaml.Node, FieldPath]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if id(node) in self.node_paths:
                continue  # an alias: its lines are where the anchor is
            self.node_paths[id(node)] = path
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.tag == _MERGE_TAG:
                        continue
                    key = (
                        key_node.value
                        if key_node.tag == _STR_TAG  # the common case, without a constructor
                        else self.construct_object(key_node, deep=True)
                    )
                    if isinstance(key, Hashable):
                        self.lines.add((*path, key), key_node.start_mark.line + 1)
                        stack.append((value_node, (*path, key)))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    self.lines.add((*path, index), item.start_mark.line + 1)
                    stack.append((item, (*path, index)))


def _lines_of(text: str) -> dict[FieldPath, int]:
    """The line of every field of ``text`` (a document already read without error)."""
    loader = ProjectLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            loader.record(root)
    except (yaml.YAMLError, RecursionError):  # (it was read before: cannot happen)
        pass
    finally:
        loader.dispose()
    return loader.lines._table()


def _count_values(root: yaml.Node) -> None:
    """Count the values ``root`` expands to (aliases included) in time linear in the nodes."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise _TooLargeError("an alias refers to the value that contains it", node)
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        in_progress.discard(key)
        sizes[key] = total
        if total > MAX_VALUES:
            raise _TooLargeError(
                f"the document expands to more than {MAX_VALUES:,} values through aliases", node
            )
        return total

    size(root)


def _not_regular(mode: int) -> str | None:
    """What a file of ``mode`` is, if it is not a regular file (which alone is read)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a project file"
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"is {kind}, not a regular file: give the path of a project file"


def _read_text(path: str) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ProjectFileError("no such file", path=path) from None
    except OSError as error:
        raise ProjectFileError(f"cannot read the file: {error.strerror}", path=path) from error
    problem = _not_regular(info.st_mode)  # a FIFO or a device could block the read forever
    if problem:
        raise ProjectFileError(problem, path=path)
    if info.st_size > MAX_FILE_BYTES:
        raise ProjectFileError(
            f"the file is {info.st_size / 1024 / 1024:.1f} MB; project files are limited to "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB",
            path=path,
        )
    try:
        # Non-blocking: if the path became a FIFO since the stat, opening it does not wait for
        # a writer, and the check on what was opened refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise ProjectFileError("is a directory, not a project file", path=path) from None
    except OSError as error:
        raise ProjectFileError(f"cannot read the file: {error.strerror}", path=path) from error
    with open(fd, "rb") as handle:
        problem = _not_regular(os.fstat(fd).st_mode)
        if problem:
            raise ProjectFileError(problem, path=path)
        try:
            data = handle.read(MAX_FILE_BYTES + 1)  # it may have grown since the stat
        except OSError as error:
            raise ProjectFileError(f"cannot read the file: {error.strerror}", path=path) from error
    if len(data) > MAX_FILE_BYTES:
        raise ProjectFileError(
            f"the file is over the {MAX_FILE_BYTES // (1024 * 1024)} MB limit", path=path
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ProjectFileError(
            f"the file is not UTF-8 text (byte {data[error.start]:#04x})", path=path, line=line
        ) from None


def _syntax_hint(text: str, mark: yaml.Mark | None) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    if not 0 <= mark.line < len(lines):
        return ""
    line = lines[mark.line]
    if mark.column > 0 and line[mark.column - 1 : mark.column + 1] == "${":
        return '; a ${VAR} inside { } or [ ] must be quoted, e.g. {api_key: "${ANTHROPIC_API_KEY}"}'
    if "\t" in line[: len(line) - len(line.lstrip())]:
        return "; indent with spaces, not tabs"
    return ""


def _syntax_error(error: yaml.YAMLError, text: str, path: str) -> ProjectFileError:
    if not isinstance(error, yaml.MarkedYAMLError):
        return ProjectFileError(f"invalid YAML: {error}", path=path)
    mark = error.problem_mark or error.context_mark
    problem = error.problem or "invalid YAML"
    if problem.startswith("could not determine a constructor for the tag"):
        tag = problem.rpartition(" ")[2].replace("tag:yaml.org,2002:", "!!")
        line = mark.line + 1 if mark is not None else None
        return ProjectFileError(
            f"the tag {tag} is not allowed: a project file holds plain data only",
            path=path,
            line=line,
        )
    context = error.context or ""
    started = ""
    if error.context_mark is not None and error.context_mark is not mark:
        started = f" started at line {error.context_mark.line + 1}"
    if context and problem.startswith("but "):
        problem = (
            f"{context} ({started.strip()}), {problem}" if started else f"{context}, {problem}"
        )
    elif context:
        problem = f"{problem} ({context}{started})"
    if "expected <block end>" in problem or "did not find expected '-'" in problem:
        problem += "; check the indentation of this line"
    line = mark.line + 1 if mark is not None else None
    return ProjectFileError(
        f"invalid YAML: {problem}{_syntax_hint(text, mark)}", path=path, line=line
    )


def read_yaml(path: str | os.PathLike[str], text: str | None = None) -> tuple[Any, LineMap]:
    """Parse the project file at ``path`` (or ``text``, named ``path``): its data and line map.

    Raises :class:`ProjectFileError` (naming the file and the line) for a file over
    :data:`MAX_FILE_BYTES` (checked before reading), a file that is not UTF-8, invalid YAML,
    duplicate keys, unsafe tags, alias bombs, and an empty file.
    """
    name = os.fspath(path)
    if text is None:
        text = _read_text(name)
    loader = ProjectLoader(text)
    root: yaml.Node | None = None
    try:
        with paused_gc():
            root = loader.get_single_node()
            if root is None:
                raise ProjectFileError(
                    "the file is empty; a project file needs at least 'agents' and 'tasks'",
                    path=name,
                )
            if "*" in text:  # aliases (maybe): refuse a bomb before anything walks it
                _count_values(root)
                data = loader.construct_document(root)
            else:  # no alias, no shared node: the direct way
                data = loader.construct_tree(root)
    except _DuplicateKeyError as error:
        if root is not None:
            loader.record(root)  # where every node is: only now that an error needs it
        field = format_path((*loader.node_paths.get(id(error.node), ()), error.key))
        parent = format_path(loader.node_paths.get(id(error.node), ()))
        raise ProjectFileError(
            f"{field}: duplicate key {error.key!r} in "
            f"{'the top level' if parent == '<top level>' else parent} "
            f"(first at line {error.first_line}); YAML would silently keep only the last one",
            path=name,
            line=error.line,
            field=field,
        ) from None
    except yaml.YAMLError as error:
        raise _syntax_error(error, text, name) from None
    except _TooLargeError as error:
        raise ProjectFileError(str(error), path=name, line=error.line) from None
    except RecursionError:
        raise ProjectFileError("the YAML is nested too deeply", path=name) from None
    finally:
        loader.dispose()
    return data, LineMap(text)

"""Path confinement (tools/paths.py): every escape is refused with an error naming the path as
given, and nothing is written outside the workspace (its neighbour folder is checked after)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coditect_core.errors import PathConfinementError
from coditect_core.tools.paths import ConfinedRoot


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """workspace/ (with a file, a sub folder, a .git folder), and outside/ beside it holding a
    file that no write may touch; symlinks from the workspace out to outside/."""
    root = tmp_path / "workspace"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "sub" / ".git").write_text("gitdir: elsewhere\n")
    (root / "a.txt").write_text("inside\n")
    outside.mkdir()
    (outside / "x").write_text("untouched\n")
    (root / "link_out").symlink_to(outside / "x")
    (root / "dir_out").symlink_to(outside, target_is_directory=True)
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "link_in").symlink_to(root / "a.txt")
    return {"root": root, "outside": outside}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


ESCAPES = [
    # (path as given, for writing only?, words the error must hold)
    ("../outside/x", False, "'..' climbs out"),
    ("a/../../outside/x", False, "'..' climbs out"),
    ("sub/../../outside/x", False, "'..' climbs out"),
    ("/etc/passwd", False, "absolute path outside"),
    ("etc/passwd", False, "symlink leads outside"),
    ("link_out", False, "symlink leads outside"),
    ("dir_out/x", False, "symlink leads outside"),
    ("dir_out/new.txt", False, "symlink leads outside"),
    ("a\x00.txt", False, "NUL byte"),
    ("", False, "empty"),
    ("   ", False, "empty"),
    (".git/config", True, "'.git' is never written"),
    (".git", True, "'.git' is never written"),
    ("sub/.git", True, "'.git' is never written"),
    (".GIT/hooks/pre-commit", True, "'.git' is never written"),
    ("sub/../.git/config", True, "'.git' is never written"),
    (".", True, "workspace folder itself"),
    ("sub/..", True, "workspace folder itself"),
]


@pytest.mark.parametrize(("given", "write_only", "words"), ESCAPES)
def test_each_escape_is_refused_clearly_and_nothing_is_written_outside(
    layout: dict[str, Path], given: str, write_only: bool, words: str
) -> None:
    root, outside = layout["root"], layout["outside"]
    confined = ConfinedRoot(root)
    before_outside, before_root = _snapshot(outside), _snapshot(root)
    if not write_only:
        with pytest.raises(PathConfinementError) as read_error:
            confined.resolve(given, tool="read_file")
        assert repr(given) in str(read_error.value)
        assert words in str(read_error.value)
        assert read_error.value.tool == "read_file"
    with pytest.raises(PathConfinementError) as error:
        confined.write_bytes(given, b"pwned\n", tool="write_file")
    assert repr(given) in str(error.value), error.value
    assert words in str(error.value), error.value
    with pytest.raises(PathConfinementError):
        confined.unlink(given, tool="delete_file")
    assert _snapshot(outside) == before_outside
    assert _snapshot(root) == before_root
    assert (outside / "x").read_text() == "untouched\n"
    assert not (outside / "new.txt").exists()


def test_a_path_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(PathConfinementError, match="must be a string"):
        ConfinedRoot(".").resolve(["a"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a.txt", "a.txt"),
        ("./sub/../a.txt", "a.txt"),
        ("sub", "sub"),
        ("link_in", "a.txt"),  # a symlink inside leading inside is fine
        ("new/deeper/file.py", "new/deeper/file.py"),
        (".", "."),
    ],
)
def test_paths_inside_are_taken(layout: dict[str, Path], given: str, expected: str) -> None:
    assert ConfinedRoot(layout["root"]).relative(given) == expected


def test_an_absolute_path_inside_the_root_is_taken(layout: dict[str, Path]) -> None:
    confined = ConfinedRoot(layout["root"])
    assert confined.relative(str(layout["root"] / "sub" / "f.txt")) == "sub/f.txt"


def test_a_root_reached_through_a_symlink_is_resolved_once(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(layout["root"], target_is_directory=True)
    confined = ConfinedRoot(alias)
    assert confined.relative("a.txt") == "a.txt"
    assert confined.relative(str(alias / "a.txt")) == "a.txt"


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PathConfinementError, match="not a directory"):
        ConfinedRoot(tmp_path / "nope")


def test_write_creates_folders_and_replaces_atomically_keeping_the_mode(
    layout: dict[str, Path],
) -> None:
    root = layout["root"]
    confined = ConfinedRoot(root)
    assert confined.write_bytes("new/deep/f.py", b"print(1)\n") is True
    assert (root / "new" / "deep" / "f.py").read_bytes() == b"print(1)\n"
    script = root / "run.sh"
    script.write_text("old\n")
    script.chmod(0o755)
    assert confined.write_bytes("run.sh", b"new\n") is False
    assert script.read_text() == "new\n"
    assert script.stat().st_mode & 0o777 == 0o755
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(
    layout: dict[str, Path],
) -> None:
    """TOCTOU: the walk opens each folder with O_NOFOLLOW, so a folder replaced by a symlink
    out between the check and the write is refused there, and nothing lands outside."""
    root, outside = layout["root"], layout["outside"]
    confined = ConfinedRoot(root)
    (root / "swap").mkdir()
    rel = "swap/f.txt"
    confined.resolve(rel, write=True)  # the check passes now
    (root / "swap").rmdir()
    (root / "swap").symlink_to(outside, target_is_directory=True)
    fd_parent = confined._parent  # the walk the write uses, without the check in front
    with (
        pytest.raises(PathConfinementError, match="not a plain folder"),
        fd_parent(Path(rel), create=True, path=rel, tool=None),  # type: ignore[arg-type]
    ):
        pass
    assert not (outside / "f.txt").exists()


def test_a_final_symlink_is_replaced_not_followed(layout: dict[str, Path]) -> None:
    """A link inside pointing inside: writing through it writes the target; deleting it
    removes the link and leaves the target."""
    root = layout["root"]
    confined = ConfinedRoot(root)
    confined.write_bytes("link_in", b"changed\n")
    assert (root / "a.txt").read_text() == "changed\n"
    assert (root / "link_in").is_symlink()
    confined.unlink("link_in")
    assert not os.path.lexists(root / "link_in")
    assert (root / "a.txt").exists()


def test_unlink_refuses_a_folder_and_a_missing_file(layout: dict[str, Path]) -> None:
    confined = ConfinedRoot(layout["root"])
    with pytest.raises(PathConfinementError, match="is a directory"):
        confined.unlink("sub")
    with pytest.raises(PathConfinementError, match=r"no file 'nope\.txt'"):
        confined.unlink("nope.txt")
    confined.unlink("a.txt")
    assert not (layout["root"] / "a.txt").exists()


class _StaleCheck(ConfinedRoot):
    """A root whose check ran before a folder was swapped for a symlink out (the race)."""

    def relative(self, path: object, *, write: bool = False, tool: str | None = None) -> str:
        return str(path)


@pytest.mark.parametrize("swapped", ["folder", "file"])
def test_a_read_after_a_symlink_was_swapped_in_does_not_follow_it(
    layout: dict[str, Path], swapped: str
) -> None:
    root, outside = layout["root"], layout["outside"]
    if swapped == "folder":
        (root / "swap").symlink_to(outside, target_is_directory=True)
        rel = "swap/x"
    else:
        (root / "swap_file").symlink_to(outside / "x")
        rel = "swap_file"
    with pytest.raises((OSError, PathConfinementError)):  # ELOOP, or 'not a plain folder'
        os.close(_StaleCheck(root).open_read(rel))
    fd = ConfinedRoot(root).open_read("link_in")  # a link inside, checked now: read
    try:
        assert os.read(fd, 100) == b"inside\n"
    finally:
        os.close(fd)


_SEGMENTS = ["..", ".", "", "a.txt", "sub", "new", ".git", ".GIT", "link_out", "dir_out", "etc"]
_SEGMENTS += ["link_in", "passwd", "x"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=6),
    anchor=st.sampled_from(["", "/", "root"]),
    write=st.booleans(),
)
def test_whatever_the_path_it_is_refused_or_lands_inside(
    layout: dict[str, Path], segments: list[str], anchor: str, write: bool
) -> None:
    """Any mix of '..', symlinks out and in, '.git' and absolute anchors: either a clear
    refusal, or a resolved path inside the root (and, for writing, not the root nor in .git)."""
    root = layout["root"]
    path = "/".join(segments)
    if anchor == "/":
        path = "/" + path
    elif anchor == "root":
        path = f"{root}/{path}"
    confined = ConfinedRoot(root)
    try:
        resolved = confined.resolve(path, write=write)
    except PathConfinementError as error:
        refusal = str(error)
    else:
        refusal = ""
    if refusal:
        assert repr(path) in refusal
        return
    real = Path(os.path.realpath(resolved))
    assert real == root or root in real.parents
    if write:
        rel = real.relative_to(root)
        assert rel.parts
        assert not any(part.casefold() == ".git" for part in rel.parts)

"""Path confinement: a path a model gave, made safe to use inside one root directory.

:class:`ConfinedRoot` resolves a path given to a tool against its root and refuses, with a
:class:`~coditect_core.errors.PathConfinementError` naming the path as given: an empty path, a
NUL byte, ``..`` that climbs out, an absolute path elsewhere (an absolute path inside the root is
taken), a symlink (file or directory) that leads out. For writing it also refuses the root itself
and anything under ``.git`` (a file or folder of that name at any depth).

Reading, writing and deleting do not trust the check alone (a directory could be swapped for a
symlink between the check and the use): :meth:`ConfinedRoot.open_read`,
:meth:`ConfinedRoot.write_bytes` and :meth:`ConfinedRoot.unlink` walk from the root one
component at a time with ``O_NOFOLLOW`` directory descriptors (and writes replace the final file
atomically), so no symlink is ever followed on the way.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from ..errors import PathConfinementError

__all__ = ["ConfinedRoot"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ConfinedRoot:
    """A directory that tools may read (and, through it, write) only inside of.

    ``root`` must exist and be a directory; it is resolved once (it may itself be reached
    through a symlink). ``tool`` names the tool in errors.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        resolved = Path(os.path.realpath(os.fspath(root)))
        if not resolved.is_dir():
            raise PathConfinementError(f"workspace {os.fspath(root)!r} is not a directory")
        self.root = resolved
        self._alias = Path(os.path.abspath(os.fspath(root)))  # the root as named, unresolved

    def relative(self, path: object, *, write: bool = False, tool: str | None = None) -> str:
        """``path`` as a POSIX path relative to the root ("." for the root itself), after the
        checks above; raises :class:`PathConfinementError` naming ``path`` as given."""
        resolved = self.resolve(path, write=write, tool=tool)
        rel = resolved.relative_to(self.root).as_posix()
        return rel or "."

    def resolve(self, path: object, *, write: bool = False, tool: str | None = None) -> Path:
        """The absolute resolved path of ``path`` inside the root (symlinks resolved), after the
        checks above; raises :class:`PathConfinementError` naming ``path`` as given."""

        def refuse(why: str) -> PathConfinementError:
            return PathConfinementError(f"path {path!r} refused: {why}", tool=tool)

        if not isinstance(path, str):
            raise refuse(f"a path must be a string, not {type(path).__name__}")
        if not path.strip():
            raise refuse("the path is empty")
        if "\x00" in path:
            raise refuse("it contains a NUL byte")
        given = Path(path)
        candidate = given if given.is_absolute() else self.root / given
        if given.is_absolute() and self._alias != self.root:
            named = Path(os.path.normpath(given))
            if _inside(named, self._alias):  # inside the root as it was named
                candidate = self.root / named.relative_to(self._alias)
        lexical = Path(os.path.normpath(candidate))
        if not _inside(lexical, self.root):
            where = "an absolute path outside" if given.is_absolute() else "'..' climbs out of"
            raise refuse(f"{where} the workspace {str(self.root)!r}")
        resolved = Path(os.path.realpath(candidate))
        if not _inside(resolved, self.root):
            raise refuse(f"a symlink leads outside the workspace {str(self.root)!r}")
        if write:
            rel = resolved.relative_to(self.root)
            if not rel.parts:
                raise refuse("the workspace folder itself cannot be written or deleted")
            lexical_rel = lexical.relative_to(self.root)
            if any(_is_git(part) for part in (*rel.parts, *lexical_rel.parts)):
                raise refuse("'.git' is never written")
        return resolved

    # -- reading and writing without following symlinks ---------------------------------------

    def open_read(self, path: str, *, tool: str | None = None) -> int:
        """A read-only descriptor of ``path`` (confined), reached from the root one component at
        a time without following a symlink (so none swapped in after the check is followed);
        non-blocking, so that a FIFO does not wait. The caller closes it."""
        rel = PurePosixPath(self.relative(path, tool=tool))
        if not rel.parts:
            raise PathConfinementError(f"path {path!r} is the workspace folder", tool=tool)
        with self._parent(rel, create=False, path=path, tool=tool) as fd:
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(rel.name, flags, dir_fd=fd)

    def write_bytes(self, path: str, data: bytes, *, tool: str | None = None) -> bool:
        """Write ``data`` to ``path`` (confined for writing), creating missing folders; the
        file is replaced atomically. Returns whether it was created (not replaced)."""
        rel = PurePosixPath(self.relative(path, write=True, tool=tool))
        with self._parent(rel, create=True, path=path, tool=tool) as fd:
            name = rel.name
            mode = 0o644
            created = True
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode):
                    raise PathConfinementError(
                        f"path {path!r} refused: it is a directory", tool=tool
                    )
                if stat.S_ISREG(st.st_mode):
                    mode = stat.S_IMODE(st.st_mode)
                created = False
            temp = f".{name}.{os.urandom(6).hex()}.tmp"
            out = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=fd,
            )
            try:
                with os.fdopen(out, "wb") as stream:
                    if not created:
                        os.fchmod(stream.fileno(), mode)  # keep the replaced file's mode
                    stream.write(data)
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=fd)
                raise
            return created

    def unlink(self, path: str, *, tool: str | None = None) -> None:
        """Delete the file ``path`` (confined for writing); a directory is refused. A symlink
        is removed itself, never what it points to."""
        self.resolve(path, write=True, tool=tool)  # every check, on what it leads to
        given = PurePosixPath(os.path.normpath(path))
        parent = PurePosixPath(self.relative(str(given.parent), tool=tool))
        rel = parent / given.name  # the name itself: a symlink is removed, not followed
        if any(_is_git(part) for part in rel.parts):
            raise PathConfinementError(f"path {path!r} refused: '.git' is never written", tool=tool)
        with self._parent(rel, create=False, path=path, tool=tool) as fd:
            try:
                st = os.stat(rel.name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise PathConfinementError(f"no file {path!r} to delete", tool=tool) from None
            if stat.S_ISDIR(st.st_mode):
                raise PathConfinementError(
                    f"path {path!r} is a directory: only files are deleted", tool=tool
                )
            os.unlink(rel.name, dir_fd=fd)

    @contextmanager
    def _parent(
        self, rel: PurePosixPath, *, create: bool, path: str, tool: str | None
    ) -> Iterator[int]:
        """A descriptor of ``rel``'s parent folder, reached from the root one component at a
        time without following a symlink (missing folders made when ``create``)."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in rel.parts[:-1]:
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise PathConfinementError(
                        f"path {path!r}: folder {part!r} does not exist", tool=tool
                    ) from None
                except (NotADirectoryError, OSError) as error:
                    raise PathConfinementError(
                        f"path {path!r} refused: {part!r} is not a plain folder "
                        f"({error.strerror or error})",
                        tool=tool,
                    ) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_git(part: str) -> bool:
    return part.casefold() == ".git"

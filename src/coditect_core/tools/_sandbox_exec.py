"""Run inside new namespaces (by :mod:`coditect_core.tools.sandbox`): set the sandbox up, then
replace this process with the command.

``python -I _sandbox_exec.py [--writable DIR]... [--read-only PATH]... -- COMMAND [ARG...]``

Always: bring up the loopback interface of the new network namespace (it starts down), so that
a command's own local servers work while nothing outside can be reached. With ``--writable``
(in a new mount namespace too): every mount is made read-only except the ``--writable``
folders (bind-mounted onto themselves first), and the ``--read-only`` paths inside them (the
workspace's ``.git``) are made read-only again. The mounts are private to the namespace: nothing
changes outside it. Any step that fails ends the command before it starts (exit 126), never a
command run with less confinement than asked.

Standard library only, run as a script: it must start fast and import nothing of the project.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import socket
import struct
import sys

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags, padded to 40 bytes

_MS_RDONLY = 0x1
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000


def loopback_up() -> None:
    """Set the ``lo`` interface of this namespace up (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        _, flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


_libc = None


def _mount(source: str | None, target: str, flags: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        None,
        ctypes.c_ulong(flags),
        None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _mount_points() -> list[tuple[str, bool]]:
    """Every mount point of this namespace, and whether it is read-only already."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as stream:
        for line in stream:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            out.append((point, "ro" in fields[5].split(",")))
    return out


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def confine_files(writable: list[str], read_only: list[str]) -> None:
    """Everything read-only but ``writable`` (minus ``read_only`` inside them)."""
    _mount(None, "/", _MS_REC | _MS_PRIVATE)  # nothing below propagates out
    for folder in writable:
        _mount(folder, folder, _MS_BIND | _MS_REC)
    for path in read_only:
        _mount(path, path, _MS_BIND)
    for point, already in _mount_points():
        if already or any(_inside(point, folder) for folder in writable):
            continue
        if point.startswith(("/proc", "/sys", "/dev")):
            continue  # kernel interfaces and devices: writing there is not writing files
        _mount(None, point, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    for path in read_only:
        _mount(None, path, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)


def main(args: list[str]) -> None:
    writable: list[str] = []
    read_only: list[str] = []
    while args and args[0] != "--":
        option, value = args[0], args[1] if len(args) > 1 else ""
        if option == "--writable":
            writable.append(os.path.realpath(value))
        elif option == "--read-only":
            read_only.append(os.path.realpath(value))
        else:
            sys.stderr.write(f"sandbox: unknown option {option!r}\n")
            sys.exit(2)
        args = args[2:]
    argv = args[1:]
    if not argv:
        sys.stderr.write("usage: _sandbox_exec.py [--writable DIR]... -- COMMAND [ARG...]\n")
        sys.exit(2)
    try:
        loopback_up()
        if writable:
            confine_files(writable, [p for p in read_only if os.path.lexists(p)])
            # The working folder was entered before the bind mounts: enter it again through
            # them, or relative paths stay on the (now read-only) mount underneath.
            os.chdir(os.getcwd())
    except OSError as error:
        sys.stderr.write(f"sandbox: cannot be set up: {error}\n")
        sys.exit(126)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        sys.stderr.write(f"command {argv[0]!r} not found: is it installed and on PATH?\n")
        sys.exit(127)
    except PermissionError as error:
        sys.stderr.write(f"command {argv[0]!r} cannot be executed: {error.strerror}\n")
        sys.exit(126)


if __name__ == "__main__":
    main(sys.argv[1:])

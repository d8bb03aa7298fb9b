"""Run inside a new network namespace (by :mod:`coditect_core.tools.sandbox`): bring up its
loopback interface, then replace this process with the command in ``sys.argv[1:]``.

Standard library only, run as a script (``python -I _netns_exec.py ARGV...``): it must start
fast and import nothing of the project.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags, padded to 40 bytes


def loopback_up() -> None:
    """Set the ``lo`` interface of this namespace up (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        _, flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: _netns_exec.py COMMAND [ARG...]\n")
        sys.exit(2)
    try:
        loopback_up()
    except OSError as error:
        sys.stderr.write(f"sandbox: cannot bring up loopback: {error}\n")
        sys.exit(126)
    argv = sys.argv[1:]
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        sys.stderr.write(f"command {argv[0]!r} not found: is it installed and on PATH?\n")
        sys.exit(127)
    except PermissionError as error:
        sys.stderr.write(f"command {argv[0]!r} cannot be executed: {error.strerror}\n")
        sys.exit(126)


if __name__ == "__main__":
    main()

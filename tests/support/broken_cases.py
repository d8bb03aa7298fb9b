"""The broken project files of ``tests/support/broken_projects/``: each says on its first line
what error it expects (``# expect: LINE | FIELD | MESSAGE``)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["BROKEN", "broken_project_cases"]

BROKEN = Path(__file__).parent / "broken_projects"
_EXPECT = re.compile(r"# expect: (\S+) \| (.+?) \| (.+)")


def broken_project_cases() -> list[tuple[Path, int | None, str | None, str]]:
    """(file, line, field, message fragment) for every broken project fixture."""
    cases = []
    for path in sorted(BROKEN.glob("*.yaml")):
        header = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
        match = _EXPECT.fullmatch(header.strip())
        assert match, f"{path.name}: first line must be '# expect: LINE | FIELD | MESSAGE'"
        line, field, message = match.groups()
        cases.append(
            (
                path,
                None if line == "-" else int(line),
                None if field == "-" else field,
                message,
            )
        )
    return cases

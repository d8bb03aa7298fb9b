"""The options several commands share, declared once: which state database, and ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["JsonOpt", "StateOpt"]

StateOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE", help="State database (default: .coditect/state.db beside the file)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

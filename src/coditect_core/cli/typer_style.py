"""How the command's Typer app reads: its ``--help`` (one naming style, whole descriptions,
panels) and its errors about arguments (in our words, not the validation library's).

Typer's plain help (``rich_markup_mode=None``, which keeps ``--help`` from importing Rich)
writes an argument's Python type beside its name (``PROJECT <path>``), braces required
arguments in the usage line (``{PROJECT}``), cuts each command's description at 45 characters
and ignores ``rich_help_panel``. :class:`Command` and :class:`Group` write instead:

- arguments and options by their metavar only (``PROJECT``, ``ID``, ``FILE``, ``N``); an
  option given none gets one from its type (:data:`TYPE_METAVARS`), never ``<list[str]>``;
- the usage line as ``[PROJECT] ID``: optional arguments in brackets, required ones bare (an
  argument listed in :data:`GIVEN_IN_USAGE` is shown bare: a command fills it from another);
- each command's whole first sentence, grouped under its panel in :data:`PANELS` order;
- a flag that is off unless given as one word (``--force``, not ``--force / --no-force``).

Typer checks option values with pydantic and says so ("Invalid value for '--format': Value
error, 'pdf' is not one of ..."): :class:`Command` words them as project files' errors are
(:func:`coditect_core.project.diagnostics.plain_message`).
"""

from __future__ import annotations

from typing import Any

import typer.core

__all__ = ["GIVEN_IN_USAGE", "PANELS", "TYPE_METAVARS", "Command", "Group"]

PANELS = ("Set up", "Run", "Inspect", "By hand", "Maintain", "One-off")
"""The top-level help's groups of commands, in their order."""

GIVEN_IN_USAGE = frozenset({"ID"})
"""Metavars shown as required in a usage line though Click sees them optional (``[PROJECT] ID``:
one word given is the ID, see :func:`.project_path.project_and_id`)."""


TYPE_METAVARS = {
    "str": "TEXT",
    "list[str]": "TEXT",
    "int": "N",
    "int range": "N",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
    "file": "FILE",
    "directory": "DIR",
}
"""The metavar of an option that names none, by the type Typer would show (``<int range>``)."""


def _metavar(param: Any, ctx: Any) -> str | None:
    """The metavar ``param`` is shown with (None: a flag, shown by its name alone)."""
    if param.metavar is not None or getattr(param, "is_flag", False) or param.count:
        return param.metavar
    label = str(param.display_type(ctx)).strip("<>")
    return TYPE_METAVARS.get(label, label.upper() if "|" not in label else label)


def _usage_piece(param: Any) -> str:
    name = param.metavar or param.name.upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required or name in GIVEN_IN_USAGE else f"[{name}]"


def _help_records(command: Any, ctx: Any, formatter: Any) -> None:
    arguments, options = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":  # the metavar alone, not "PROJECT <path>"
            arguments.append((param.metavar or param.name.upper(), record[1]))
        else:
            metavar = _metavar(param, ctx)
            if metavar is not None and param.metavar is None:
                param.metavar = metavar  # Typer's record then shows it, not the type
                record = param.get_help_record(ctx) or record
            options.append(record)
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


class Command(typer.core.TyperCommand):
    """A command whose help and argument errors follow the module's style."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # a flag is one word: --restart, never --restart/--no-restart
            flag = getattr(param, "is_flag", False) and param.default is False
            if flag and getattr(param, "secondary_opts", None):
                param.secondary_opts = []

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as error:
            from ..project.diagnostics import plain_message

            error.message = plain_message(error.message)
            raise

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_usage_piece(param))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _help_records(self, ctx, formatter)


class Group(typer.core.TyperGroup):
    """A group whose help lists its commands whole, under their panels."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _help_records(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            panel = getattr(command, "rich_help_panel", None) or "Commands"
            panels.setdefault(panel, []).append((name, command.get_short_help_str(10_000)))
        order = {panel: index for index, panel in enumerate(PANELS)}
        for panel in sorted(panels, key=lambda p: order.get(p, len(order))):
            with formatter.section(panel):
                formatter.write_dl(panels[panel])

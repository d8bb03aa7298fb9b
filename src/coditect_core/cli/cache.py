"""``coditect cache stats|clear``: the project's call journal, which ``run --cache`` and an
agent's ``cache:`` answer identical requests from, and ``run --replay`` replays."""

from __future__ import annotations

import typer

from .options import JsonOpt, StateOpt
from .output import ExitCode, Shown, console, fail_for, print_json
from .project_path import ProjectArg, project_file

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    cache = typer.Typer(
        name="cache",
        help="The call journal: what it holds (stats), forget it (clear).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(cache)

    @cache.command("stats")
    def stats_command(
        project: ProjectArg = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """What the project's call journal holds: requests, answers from providers, cache
        hits and replays, and what the hits saved.

        Examples:

          coditect cache stats project.yaml

          coditect cache stats --json
        """
        from ..app.journal import journal_stats
        from ..errors import CoditectError
        from ..reporting import fmt

        path = project_file(project, as_json=as_json)
        try:
            stats = journal_stats(path, state=state)
        except (CoditectError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json(stats.to_dict())
            return
        console().print(
            Shown()(
                f"{stats.project}: {stats.requests} request(s) in the journal; "
                f"{stats.provider_calls} answered by a provider, {stats.cache_hits} from the "
                f"cache, {stats.replayed} replayed; {stats.messages} message(s) kept; "
                f"the cache saved {fmt.usd(stats.saved_usd)} and "
                f"{fmt.count(stats.saved_tokens)} tokens"
            ),
            markup=False,
            soft_wrap=True,
        )

    @cache.command("clear")
    def clear_command(
        project: ProjectArg = None,
        state: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Forget the project's call journal (the next runs ask the providers again; a run
        before this one can no longer be replayed). Refused while a run is live.

        Examples:

          coditect cache clear project.yaml
        """
        from ..app.journal import clear_journal
        from ..errors import CoditectError

        path = project_file(project, as_json=as_json)
        try:
            removed = clear_journal(path, state=state)
        except (CoditectError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        if as_json:
            print_json({"cleared": removed})
            return
        console().print(f"{removed} answer(s) forgotten", markup=False)

"""The call journal in the state store: its writes and reads, and :class:`RunJournal`, the
journal of one run (what the executor is given, :class:`~coditect_core.orchestration.journal.
CallJournal`).

A request is kept once under its key, its conversation as a chain of prefixes (each kept once,
pointing at its parent and its last message) and each message once by its hash: a new turn of a
conversation adds its new messages and prefixes only, so a conversation of N turns costs O(N)
bytes. Each answer given in a run is a row of ``journal_calls`` (``source``: ``provider``, or
``cache``/``replay`` when the journal gave it, repeating the answer). Text is scrubbed of known
secrets like every other write (the hashes are of the text as sent, so a key never needs to be
stored to be matched); the request's settings never include the key.

A cache lookup takes the latest answer to the same request in the project; a replay's takes the
latest given in the replayed run or before it. Lookups go through the writer, so they see every
answer the run has recorded so far.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StateError
from ..llm_abstractions.base_llm import Usage
from ..orchestration.journal import JournalAnswer, JournalRequest
from ..secrets import Scrubber
from .records import project_id

if TYPE_CHECKING:
    from .state_store import StateStore

__all__ = [
    "JournalStats",
    "RunJournal",
    "answered_keys",
    "clear_journal",
    "find_answer",
    "read_journal_stats",
    "record_call",
]


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What a project's journal holds."""

    project: str
    requests: int
    """Distinct requests with an answer."""
    provider_calls: int
    """Answers that came from a provider."""
    cache_hits: int
    replayed: int
    messages: int
    """Distinct messages kept (across the database's projects)."""
    saved_usd: float
    """What the cache hits' answers cost when the provider gave them (known prices only)."""
    saved_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "requests": self.requests,
            "provider_calls": self.provider_calls,
            "cache_hits": self.cache_hits,
            "replayed": self.replayed,
            "messages": self.messages,
            "saved_usd": self.saved_usd,
            "saved_tokens": self.saved_tokens,
        }


def record_call(
    scrub: Scrubber,
    project: int,
    run_id: int | None,
    request: JournalRequest,
    answer: JournalAnswer,
    task_id: str,
    source: str,
) -> Callable[[sqlite3.Connection], None]:
    """The write of one answer to ``request`` (in the writer's transaction)."""
    now = time.time()

    def op(conn: sqlite3.Connection) -> None:
        known = conn.execute(
            "SELECT 1 FROM journal_requests WHERE key = ?", (request.key,)
        ).fetchone()
        if known is None:
            _keep_conversation(conn, scrub, request)
            conn.execute(
                "INSERT INTO journal_requests(key, provider, model, base_url, params, prefix) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request.key, scrub.text(request.provider), scrub.text(request.model),
                    scrub.text(request.base_url), scrub.json(request.params), request.prefix,
                ),
            )  # fmt: skip
        usage = answer.usage
        conn.execute(
            "INSERT INTO journal_calls(key, project_id, run_id, task_id, at, source, text, "
            "tool_calls, model, prompt_tokens, completion_tokens, finish_reason, response_id, "
            "cost, latency_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.key, project, run_id, scrub.text(task_id), now, source,
                scrub.text(answer.text) or "",
                None if answer.tool_calls is None else scrub.json(answer.tool_calls),
                scrub.text(answer.model), usage.prompt_tokens, usage.completion_tokens,
                scrub.text(answer.finish_reason), scrub.text(answer.response_id),
                answer.cost_usd, answer.latency_s,
            ),
        )  # fmt: skip

    return op


def _keep_conversation(conn: sqlite3.Connection, scrub: Scrubber, request: JournalRequest) -> None:
    """Keep the prefixes (and messages) of ``request`` not kept yet: from the last back to the
    first one already there (whose own ancestors are there too)."""
    for (prefix, parent, message), (role, content) in zip(
        reversed(request.chain), reversed(request.messages), strict=True
    ):
        if conn.execute("SELECT 1 FROM journal_prefixes WHERE hash = ?", (prefix,)).fetchone():
            return
        conn.execute(
            "INSERT OR IGNORE INTO journal_messages(hash, role, content) VALUES (?, ?, ?)",
            (message, role, scrub.text(content) or ""),
        )
        conn.execute(
            "INSERT INTO journal_prefixes(hash, parent, message) VALUES (?, ?, ?)",
            (prefix, parent, message),
        )


def find_answer(
    conn: sqlite3.Connection, project: int, key: str, *, up_to_run: int | None = None
) -> JournalAnswer | None:
    """The latest answer to request ``key`` in ``project`` (given in run ``up_to_run`` or
    before it, when given)."""
    sql = (
        "SELECT text, tool_calls, model, prompt_tokens, completion_tokens, finish_reason, "
        "response_id, cost, latency_s, run_id FROM journal_calls "
        "WHERE key = ? AND project_id = ?"
    )
    args: list[Any] = [key, project]
    if up_to_run is not None:
        sql += " AND run_id <= ?"
        args.append(up_to_run)
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
    if row is None:
        return None
    return JournalAnswer(
        text=row[0],
        tool_calls=None if row[1] is None else json.loads(row[1]),
        model=row[2],
        usage=Usage(row[3] or 0, row[4] or 0),
        finish_reason=row[5],
        response_id=row[6],
        cost_usd=row[7],
        latency_s=row[8],
        run_id=row[9],
    )


def answered_keys(conn: sqlite3.Connection, project: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` have an answer in ``project``'s journal."""
    pid = project_id(conn, project)
    found: set[str] = set()
    if pid is None:
        return found
    for start in range(0, len(keys), 500):  # within SQLite's limit of bound parameters
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT key FROM journal_calls WHERE project_id = ? AND key IN ({marks})",
                (pid, *chunk),
            )
        )
    return found


def read_journal_stats(conn: sqlite3.Connection, project: str) -> JournalStats:
    pid = project_id(conn, project)
    if pid is None:
        return JournalStats(project, 0, 0, 0, 0, 0, 0.0, 0)
    counts = dict(
        conn.execute(
            "SELECT source, count(*) FROM journal_calls WHERE project_id = ? GROUP BY source",
            (pid,),
        ).fetchall()
    )
    requests = conn.execute(
        "SELECT count(DISTINCT key) FROM journal_calls WHERE project_id = ?", (pid,)
    ).fetchone()[0]
    messages = conn.execute("SELECT count(*) FROM journal_messages").fetchone()[0]
    # A hit repeats its answer's cost and tokens as the provider gave them.
    saved = conn.execute(
        "SELECT coalesce(sum(cost), 0), coalesce(sum(prompt_tokens + completion_tokens), 0) "
        "FROM journal_calls WHERE project_id = ? AND source = 'cache'",
        (pid,),
    ).fetchone()
    return JournalStats(
        project,
        int(requests),
        int(counts.get("provider", 0)),
        int(counts.get("cache", 0)),
        int(counts.get("replay", 0)),
        int(messages),
        float(saved[0]),
        int(saved[1]),
    )


def clear_journal(project: str) -> Callable[[sqlite3.Connection], int]:
    """Forget ``project``'s journal; then the requests, prefixes and messages no other
    project's answers need. Returns the number of answers forgotten."""

    def op(conn: sqlite3.Connection) -> int:
        pid = project_id(conn, project)
        if pid is None:
            return 0
        removed = conn.execute("DELETE FROM journal_calls WHERE project_id = ?", (pid,)).rowcount
        conn.execute(
            "DELETE FROM journal_requests WHERE key NOT IN (SELECT key FROM journal_calls)"
        )
        conn.execute(
            "DELETE FROM journal_prefixes WHERE hash NOT IN ("
            "WITH RECURSIVE live(hash) AS (SELECT prefix FROM journal_requests "
            "UNION SELECT p.parent FROM journal_prefixes p JOIN live ON p.hash = live.hash "
            "WHERE p.parent IS NOT NULL) SELECT hash FROM live)"
        )
        conn.execute(
            "DELETE FROM journal_messages WHERE hash NOT IN (SELECT message FROM journal_prefixes)"
        )
        return int(removed)

    return op


class RunJournal:
    """The journal of one run of ``store`` (begun: ``run_id``), for the executor.

    ``replay_of``: the run replayed (every request must be answered from the journal as of that
    run). Answers are recorded without waiting, in order with the run's other writes.
    """

    def __init__(self, store: StateStore, run_id: int, *, replay_of: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.replay_of = replay_of
        self.replay = replay_of is not None
        self._project: int | None = None

    async def _project_id(self) -> int:
        if self._project is None:
            run_id = self.run_id

            def op(conn: sqlite3.Connection) -> int:
                row = conn.execute("SELECT project_id FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise StateError(f"run {run_id} is not in the state database")
                return int(row[0])

            self._project = await self.store.write(op)
        return self._project

    async def find(self, request: JournalRequest) -> JournalAnswer | None:
        project = await self._project_id()
        up_to = self.replay_of
        return await self.store.write(
            lambda conn: find_answer(conn, project, request.key, up_to_run=up_to)
        )

    def record(
        self, request: JournalRequest, answer: JournalAnswer, *, task_id: str, source: str
    ) -> None:
        project = self._project
        if project is None:
            raise StateError("the run's journal is not open: call open() first")
        self.store.post(
            record_call(self.store.scrubber, project, self.run_id, request, answer, task_id, source)
        )

    async def open(self) -> RunJournal:
        """Find the run's project (before the first request)."""
        await self._project_id()
        return self

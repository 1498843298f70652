"""Counters of the database work a process does (statements, transactions, pool checkouts), for `make bench`.

Attached only when ONECREW_DEBUG_ENDPOINTS is on and read over GET /_debug/process. The counters are
process-wide (not per request): the bench reads them before and after a scenario and divides by its requests.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine

from onecrew_chat.db import IdlePings, idle_pings

# asyncpg's ping: BEGIN, an empty statement, ROLLBACK.
PING_ROUND_TRIPS = 3


@dataclass
class DatabaseCounters:
    """What the process asked of its database since it started."""

    statements: int = 0
    transactions: int = 0
    commits: int = 0
    rollbacks: int = 0
    pool_checkouts: int = 0
    remote: bool = True
    # The pool's pings of connections that sat idle (db.ping_idle_connections), read from the engine's count.
    _pings: IdlePings | None = field(default=None, repr=False)
    _pings_at_start: int = field(default=0, repr=False)

    @property
    def pings(self) -> int:
        """Checkouts that pinged their connection first (it had been idle; three round trips on asyncpg)."""
        return self._pings.count - self._pings_at_start if self._pings else 0

    @property
    def round_trips(self) -> int:
        """Network round trips to a database server: statements, BEGIN, COMMIT/ROLLBACK and the pool's pings.

        An estimate from the client side (asyncpg may add one to prepare a statement it has not cached); 0 for
        SQLite, which runs inside the process.
        """
        if not self.remote:
            return 0
        return self.statements + self.transactions + self.commits + self.rollbacks + PING_ROUND_TRIPS * self.pings

    def snapshot(self) -> dict[str, int]:
        """The counters as JSON, with the process id and the round-trip estimate."""
        values = {k: v for k, v in asdict(self).items() if k != "remote" and not k.startswith("_")}
        return {"pid": os.getpid(), **values, "pings": self.pings, "round_trips": self.round_trips}


def _autocommit(conn: Connection) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def attach_counters(engine: AsyncEngine) -> DatabaseCounters:
    """Count the engine's statements, transactions and checkouts from now on."""
    pings = idle_pings(engine)
    counters = DatabaseCounters(
        remote=engine.dialect.name != "sqlite", _pings=pings, _pings_at_start=pings.count if pings else 0
    )
    sync_engine = engine.sync_engine

    def _statement(*_args: object, **_kwargs: object) -> None:
        counters.statements += 1

    # A connection in autocommit (db.reads_only) sends no BEGIN, COMMIT or ROLLBACK: SQLAlchemy's events still fire.
    def _begin(conn: Connection) -> None:
        if not _autocommit(conn):
            counters.transactions += 1

    def _commit(conn: Connection) -> None:
        if not _autocommit(conn):
            counters.commits += 1

    def _rollback(conn: Connection) -> None:
        if not _autocommit(conn):
            counters.rollbacks += 1

    def _checkout(*_args: object) -> None:
        counters.pool_checkouts += 1

    event.listen(sync_engine, "before_cursor_execute", _statement)
    event.listen(sync_engine, "begin", _begin)
    event.listen(sync_engine, "commit", _commit)
    event.listen(sync_engine, "rollback", _rollback)
    event.listen(sync_engine.pool, "checkout", _checkout)
    return counters

"""The suite's databases: each migrated once per session, then handed to each test empty, cheaply.

PostgreSQL: one database per session, migrated once. Between tests only the tables a test wrote to are emptied
(DELETE) and the sequences it drew from restarted, in the same connection that first waits for the test's own
connections to close. TRUNCATE of every table, which this replaces, rewrites each table's files and costs a
third of a second per test even when nothing was written; a template database cloned per test costs seconds.
Rolling back a per-test transaction is not possible: the code under test commits, from several connections
and processes.

SQLite: one file migrated once per session; each test gets its own copy of it (a file copy, no SQL).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from onecrew_chat.database_url import driver_target
from onecrew_chat.db import upgrade_database
from onecrew_chat.models import Base

# A PostgreSQL test must close every connection it opened to the session's database by its end (within
# LEFTOVER_WAIT_S, for processes still exiting). One that does not fails with an error in its teardown, and its
# connections are ended so that the tests after it start clean.
LEFTOVER_WAIT_S = 30.0

_OTHER_CLIENTS = (
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Children before parents, so that DELETE never trips a foreign key.
_TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)]
# One round trip names the tables that hold rows and the sequences that were drawn from since their restart.
_DIRTY = " UNION ALL ".join(
    [f"SELECT 'table', '{name}' WHERE EXISTS (SELECT 1 FROM {_quoted(name)})" for name in _TABLES]
    + [
        "SELECT 'sequence', sequencename FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"
    ]
)


class PostgresDatabase:
    """The session's migrated PostgreSQL database and what the tests know of its state."""

    def __init__(self, url: str) -> None:
        self.url = url
        # False until a check has emptied it; a test that uses the database outside `prepare`/`finish` sets it
        # back (tests/conftest.py), so the next test empties it again.
        self.known_empty = False

    def prepare(self) -> None:
        """Before a test: empty, unless the previous test's `finish` already left it so."""
        if not self.known_empty:
            asyncio.run(self._run(wait_for_others=False))
        self.known_empty = False

    def finish(self) -> int:
        """After a test: wait for its connections to close, then empty what it wrote. Returns how many
        connections were still open after LEFTOVER_WAIT_S (those are ended, and the database left to `prepare`)."""
        return asyncio.run(self._run(wait_for_others=True))

    async def _run(self, *, wait_for_others: bool) -> int:
        target = driver_target(self.url)
        engine = create_async_engine(target.url, connect_args=target.connect_args, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                left = await _wait_for_closed(conn) if wait_for_others else 0
                if left:
                    await conn.execute(text(f"SELECT pg_terminate_backend(pid) {_OTHER_CLIENTS}"))
                    await conn.commit()
                    return left
                await _empty(conn)
                self.known_empty = wait_for_others
                return 0
        finally:
            await engine.dispose()


async def _wait_for_closed(conn: AsyncConnection) -> int:
    """0 once no other client is connected to the database, else how many still were after LEFTOVER_WAIT_S."""
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while True:
        left = int((await conn.execute(text(f"SELECT count(*) {_OTHER_CLIENTS}"))).scalar_one())
        await conn.commit()  # the statistics views keep one snapshot per transaction
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait


async def _empty(conn: AsyncConnection) -> None:
    """Delete every row of every table the models declare and restart the sequences (the schema and
    alembic_version stay): what TRUNCATE ... RESTART IDENTITY did, touching only what a test used."""
    dirty = (await conn.execute(text(_DIRTY))).all()
    await conn.commit()
    if not dirty:
        return
    tables = {name for kind, name in dirty if kind == "table"}
    # A test database: what matters after a crash is the next session's fresh database, not these rows.
    await conn.execute(text("SET LOCAL synchronous_commit = off"))
    for name in _TABLES:
        if name in tables:
            await conn.execute(text(f"DELETE FROM {_quoted(name)}"))
    for kind, name in dirty:
        if kind == "sequence":
            await conn.execute(text(f"ALTER SEQUENCE {_quoted(name)} RESTART"))
    await conn.commit()


class SqliteTemplate:
    """A SQLite file migrated once; `copy()` gives each test its own database in a few milliseconds."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "migrated.sqlite3"
        upgrade_database(self.url_of(self.path))
        self._numbers = itertools.count(1)

    @staticmethod
    def url_of(path: Path) -> str:
        return f"sqlite:///{path}"

    def copy(self) -> Path:
        path = self.directory / f"test-{next(self._numbers)}.sqlite3"
        shutil.copyfile(self.path, path)
        return path

    @staticmethod
    def remove(path: Path) -> None:
        """Delete a test's copy (with SQLite's side files); a connection still open keeps its inode until it closes."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

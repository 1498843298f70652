"""Where a database stands against the migrations this code ships: `db current`, `db history`, start-up checks.

A database a newer version migrated is still fit for this code when that newer version's migrations only
expanded the schema (docs/operations.md, "Upgrade and rollback"): each migration declares `oldest_code_head`,
the oldest migration head whose code still works on the schema it leaves, and the migrations record it in the
table `schema_compatibility`. This code runs on a newer schema whose recorded head it ships.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from onecrew_chat.config import Settings
from onecrew_chat.db import alembic_config, current_revision, make_engine

# One row (id 1), written by the migrations themselves (migrations/env.py); not an ORM model, so the tests'
# table-emptying leaves it alone.
COMPATIBILITY = sa.Table(
    "schema_compatibility",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("oldest_code_head", sa.String(32), nullable=False),
)


@dataclass(frozen=True)
class SchemaPosition:
    """The database's migration, and the oldest code head its newest migration said still works on it."""

    revision: str | None
    oldest_code_head: str | None = None


async def read_position(engine: AsyncEngine) -> SchemaPosition:
    """The migration the database is at and its recorded `oldest_code_head` (None before migration 0017)."""
    revision = await current_revision(engine)
    if revision is None:
        return SchemaPosition(None)
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda sync: sa.inspect(sync).has_table(COMPATIBILITY.name)):
            return SchemaPosition(revision)
        oldest = (await conn.execute(sa.select(COMPATIBILITY.c.oldest_code_head))).scalar()
    return SchemaPosition(revision, oldest)


async def database_position(settings: Settings) -> SchemaPosition:
    """read_position on an engine of its own (for commands and start-up checks)."""
    engine = make_engine(settings)
    try:
        return await read_position(engine)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Migration:
    """One shipped migration: its revision id and the first line of its description."""

    revision: str
    title: str


@dataclass(frozen=True)
class SchemaStatus:
    """The database's revision compared with the shipped ones."""

    current: str | None
    head: str
    pending: list[Migration]
    known: bool
    # A newer version migrated the database and recorded that code at this version's head still works on it.
    newer_compatible: bool = False

    @property
    def up_to_date(self) -> bool:
        """True when the database is at the newest shipped migration."""
        return self.current == self.head

    @property
    def usable(self) -> bool:
        """True when this code may serve on the schema: at its head, or newer and declared compatible."""
        return self.up_to_date or self.newer_compatible

    def problem(self) -> str | None:
        """What is wrong, in words that say what to do; None when this code can run on the schema."""
        if self.usable:
            return None
        if self.current is None:
            return f"the database has no schema yet (needs migration {self.head}); run `onecrew-chat db upgrade` first"
        if not self.known:
            return (
                f"the database is at migration {self.current}, which this version of onecrew-chat does not know (its "
                f"newest is {self.head}) and which no longer works with it: a newer version migrated it past what "
                f"this version can use. Run that newer version, or first `db downgrade` with it"
            )
        waiting = ", ".join(m.revision for m in self.pending)
        return (
            f"the database is at migration {self.current} but this version needs {self.head} "
            f"(to apply: {waiting}); run `onecrew-chat db upgrade` first"
        )


def shipped_migrations() -> list[Migration]:
    """The migrations in this code, oldest first."""
    return list(_shipped())


@functools.cache
def _shipped() -> tuple[Migration, ...]:
    """Read from the packaged scripts once per process (/readyz asks on every probe)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())  # newest first
    return tuple(
        Migration(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "") for r in reversed(revisions)
    )


def schema_status(current: str | SchemaPosition | None) -> SchemaStatus:
    """`current` (a revision from db.current_revision, or a SchemaPosition) placed among the shipped migrations."""
    position = current if isinstance(current, SchemaPosition) else SchemaPosition(current)
    current = position.revision
    migrations = shipped_migrations()
    ids = [m.revision for m in migrations]
    head = ids[-1]
    if current is None:
        return SchemaStatus(None, head, migrations, known=True)
    if current not in ids:
        compatible = position.oldest_code_head is not None and position.oldest_code_head in ids
        return SchemaStatus(current, head, [], known=False, newer_compatible=compatible)
    return SchemaStatus(current, head, migrations[ids.index(current) + 1 :], known=True)

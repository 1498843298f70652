"""Where a database stands against the migrations this code ships: `db current`, `db history`, start-up checks."""

from __future__ import annotations

from dataclasses import dataclass

from onecrew_chat.db import alembic_config


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

    @property
    def up_to_date(self) -> bool:
        """True when the database is at the newest shipped migration."""
        return self.current == self.head

    def problem(self) -> str | None:
        """What is wrong, in words that say what to do; None when the schema is current."""
        if self.up_to_date:
            return None
        if self.current is None:
            return f"the database has no schema yet (needs migration {self.head}); run `onecrew-chat db upgrade` first"
        if not self.known:
            return (
                f"the database is at migration {self.current}, which this version of onecrew-chat does not know (its "
                f"newest is {self.head}): a newer version migrated it. Run that newer version, or restore a backup "
                f"taken before it; `db upgrade` cannot go back"
            )
        waiting = ", ".join(m.revision for m in self.pending)
        return (
            f"the database is at migration {self.current} but this version needs {self.head} "
            f"(to apply: {waiting}); run `onecrew-chat db upgrade` first"
        )


def shipped_migrations() -> list[Migration]:
    """The migrations in this code, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())  # newest first
    return [Migration(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "") for r in reversed(revisions)]


def schema_status(current: str | None) -> SchemaStatus:
    """`current` (from db.current_revision) placed among the shipped migrations."""
    migrations = shipped_migrations()
    ids = [m.revision for m in migrations]
    head = ids[-1]
    if current is None:
        return SchemaStatus(None, head, migrations, known=True)
    if current not in ids:
        return SchemaStatus(current, head, [], known=False)
    return SchemaStatus(current, head, migrations[ids.index(current) + 1 :], known=True)

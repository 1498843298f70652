"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike (mirror rows written by concurrent requests)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def upsert_rows(session: AsyncSession, model, rows: list[dict], *, key: Sequence[str]) -> None:
    """Insert the rows, or overwrite the non-key columns of rows that already exist with the same key."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[name] for name in key))  # one lock order: no deadlocks
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(rows)
    columns = [name for name in rows[0] if name not in key]
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in columns}
    )
    await session.execute(statement)

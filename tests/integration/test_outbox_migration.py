"""Migration 0005 on SQLite and PostgreSQL: duplicate pending rows of one dedupe key, which the old
select-then-insert could leave, are collapsed before the unique index is built."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat import dbadmin
from onecrew_chat.config import to_async_url
from onecrew_chat.db import upgrade_database
from tests.conftest import PG_ADMIN_URL

ROWS = [
    # (kind, dedupe_key, status, payload, next_attempt_at)
    ("identity.sync", "a", "pending", '{"v": 1}', "2026-01-01 10:00:00"),
    ("identity.sync", "a", "pending", '{"v": 2}', "2026-01-01 12:00:00"),
    ("identity.sync", "a", "pending", '{"v": 3}', "2026-01-01 11:00:00"),
    ("identity.sync", "a", "done", '{"v": 0}', "2026-01-01 09:00:00"),
    ("identity.sync", "b", "pending", '{"v": 9}', "2026-01-01 10:00:00"),
    ("conversation.provision", "a", "pending", '{"v": 5}', "2026-01-01 10:00:00"),
    ("identity.sync", None, "pending", '{"v": 7}', "2026-01-01 10:00:00"),
    ("identity.sync", None, "pending", '{"v": 8}', "2026-01-01 10:00:00"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request, tmp_path):
    """A database at migration 0004 (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        upgrade_database(url, "0004")
        yield url
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    name = f"onecrew_mig_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    upgrade_database(url, "0004")
    yield url
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


def _when(at: str, *, aware: bool) -> datetime:
    """The timestamp as each database's column takes it (SQLite stores naive UTC)."""
    value = datetime.fromisoformat(at)
    return value.replace(tzinfo=UTC) if aware else value


async def _execute(url: str, statement: str, rows: list[dict] | None = None) -> list:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), rows) if rows else await conn.execute(text(statement))
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


def test_0005_collapses_duplicate_pending_rows_then_enforces_one_per_key(old_database):
    is_pg = old_database.startswith("postgres")
    cast = "CAST(:payload AS JSON)" if is_pg else ":payload"
    at = ":at"
    asyncio.run(
        _execute(
            old_database,
            "INSERT INTO outbox_message (kind, dedupe_key, status, attempts, payload, next_attempt_at, created_at, updated_at) "
            f"VALUES (:kind, :key, :status, 0, {cast}, {at}, {at}, {at})",
            [{"kind": k, "key": d, "status": s, "payload": p, "at": _when(a, aware=is_pg)} for k, d, s, p, a in ROWS],
        )
    )
    upgrade_database(old_database)
    rows = asyncio.run(
        _execute(
            old_database,
            "SELECT kind, dedupe_key, status, payload, next_attempt_at, version FROM outbox_message ORDER BY id",
        )
    )
    seen = [(k, d, s, json.loads(p) if isinstance(p, str) else p, str(n)[:19], v) for k, d, s, p, n, v in rows]
    assert seen == [
        ("identity.sync", "a", "pending", {"v": 3}, "2026-01-01 10:00:00", 0),  # newest payload, earliest due
        ("identity.sync", "a", "done", {"v": 0}, "2026-01-01 09:00:00", 0),
        ("identity.sync", "b", "pending", {"v": 9}, "2026-01-01 10:00:00", 0),
        ("conversation.provision", "a", "pending", {"v": 5}, "2026-01-01 10:00:00", 0),
        ("identity.sync", None, "pending", {"v": 7}, "2026-01-01 10:00:00", 0),
        ("identity.sync", None, "pending", {"v": 8}, "2026-01-01 10:00:00", 0),
    ]
    with pytest.raises(Exception, match="(?i)unique"):
        asyncio.run(
            _execute(
                old_database,
                "INSERT INTO outbox_message (kind, dedupe_key, status, attempts, version, payload, next_attempt_at, created_at, updated_at) "
                f"VALUES ('identity.sync', 'a', 'pending', 0, 0, {cast.replace(':payload', chr(39) + '{}' + chr(39))}, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            )
        )

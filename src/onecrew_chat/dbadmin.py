"""Whole-database chores for the test suite and the benchmarks: create or drop a PostgreSQL database, empty every table.

The service itself never calls these; they live here so that tests/conftest.py and bench/harness.py share one copy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from onecrew_chat.database_url import driver_target
from onecrew_chat.models import Base


async def can_connect(url: str) -> bool:
    """True when the database at `url` answers `SELECT 1`."""
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure to connect means "not available"
        return False
    finally:
        await engine.dispose()


async def admin_execute(admin_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
    engine = _engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


_OTHER_CLIENTS = (
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)


async def other_connections(url: str) -> int:
    """How many clients are connected to `url`'s PostgreSQL database besides the one asking (the test suite's
    check that each test closed its own)."""
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) {_OTHER_CLIENTS}"))).scalar_one())
    finally:
        await engine.dispose()


async def end_other_connections(url: str) -> None:
    """End every other client's connection to `url`'s PostgreSQL database (pg_terminate_backend)."""
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_terminate_backend(pid) {_OTHER_CLIENTS}"))
    finally:
        await engine.dispose()


def _engine(url: str, **options: Any) -> AsyncEngine:
    """An engine for `url` with its libpq parameters (sslmode, ...) passed to the driver."""
    target = driver_target(url)
    return create_async_engine(target.url, connect_args=target.connect_args, **options)


def sibling_database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server `admin_url` points at (same credentials)."""
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


async def create_database(admin_url: str, name: str) -> str:
    """Create the empty PostgreSQL database `name` next to `admin_url`'s and return its URL."""
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    return sibling_database_url(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever still uses it."""
    await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def empty_all_tables(url: str) -> None:
    """Delete every row of every table the models declare (the schema and alembic_version stay)."""
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            preparer = conn.dialect.identifier_preparer
            tables = [preparer.format_table(table) for table in reversed(Base.metadata.sorted_tables)]
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()

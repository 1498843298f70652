"""Alembic environment: runs the migrations over the async engine on SQLite or PostgreSQL."""

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat.database_url import driver_target
from onecrew_chat.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        _record_compatibility(connection)


def _record_compatibility(connection: Connection) -> None:
    """Write the newest applied migration's `oldest_code_head` (default: itself) into schema_compatibility, in the
    migrations' own transaction (onecrew_chat.schema_status reads it)."""
    revision = context.get_context().get_current_revision()
    if revision is None or not sa.inspect(connection).has_table("schema_compatibility"):
        return
    script = context.script.get_revision(revision)
    oldest = getattr(script.module, "oldest_code_head", revision) if script is not None else revision
    table = sa.table("schema_compatibility", sa.column("id"), sa.column("oldest_code_head"))
    if connection.execute(sa.update(table).where(table.c.id == 1).values(oldest_code_head=oldest)).rowcount == 0:
        connection.execute(sa.insert(table).values(id=1, oldest_code_head=oldest))


async def _run_async() -> None:
    # DATABASE_URL's libpq parameters (sslmode, ...) become asyncpg's connect arguments here too.
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "db.alembic_config sets sqlalchemy.url"
    target = driver_target(url)
    engine = create_async_engine(target.url, connect_args=target.connect_args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run in a fresh event loop, or on the connection a caller passed in config.attributes."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

"""libpq URL parameters and the pool/timeout settings reach a real PostgreSQL connection (and the migrations)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import text

from onecrew_chat.config import Settings
from onecrew_chat.db import current_revision, head_revision, make_engine, upgrade_database


async def _show(settings: Settings, *names: str) -> list[str]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return [(await conn.execute(text(f"SHOW {name}"))).scalar_one() for name in names]
    finally:
        await engine.dispose()


async def test_libpq_parameters_and_timeouts_are_applied(postgres_url):
    options = quote("-c search_path=onecrew_probe,public")
    url = f"{postgres_url}?sslmode=disable&connect_timeout=5&application_name=onecrew-chat-test&options={options}"
    url = url.replace("postgresql://", "postgres://", 1)
    settings = Settings(
        mode="development", database_url=url, db_statement_timeout_ms=1500, db_lock_timeout_ms=250, db_pool_size=2
    )
    shown = await _show(settings, "application_name", "search_path", "statement_timeout", "lock_timeout")
    assert shown == ["onecrew-chat-test", "onecrew_probe,public", "1500ms", "250ms"]
    engine = make_engine(settings)
    try:
        assert engine.pool.size() == 2
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_sslmode_reaches_the_driver(postgres_url):
    # The test server speaks no TLS: `require` must be refused by it, which proves the parameter was applied.
    settings = Settings(mode="development", database_url=f"{postgres_url}?sslmode=require")
    with pytest.raises(Exception, match="SSL"):
        await _show(settings, "application_name")
    assert await _show(Settings(mode="development", database_url=f"{postgres_url}?sslmode=prefer"), "server_version")


def test_migrations_accept_libpq_parameters(postgres_url):
    upgrade_database(f"{postgres_url}?sslmode=prefer&application_name=onecrew-migrate&connect_timeout=3")

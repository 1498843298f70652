"""Settings for PgBouncer in transaction mode: refused where they cannot work, and what they change in the engine."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from onecrew_chat.config import Settings
from onecrew_chat.db import for_transaction_pooler


def test_session_settings_sent_at_start_up_are_refused_behind_a_transaction_pooler():
    with pytest.raises(ValidationError, match="ALTER ROLE"):
        Settings(db_transaction_pooler=True, db_statement_timeout_ms=5000, _env_file=None)
    Settings(db_transaction_pooler=True, _env_file=None)  # alone it is fine


def test_the_listen_url_must_reach_postgresql():
    with pytest.raises(ValidationError, match="postgresql:// URL"):
        Settings(db_listen_url="sqlite:///x.db", _env_file=None)
    assert Settings(db_listen_url=" postgres://u@db/x ", _env_file=None).db_listen_url == "postgres://u@db/x"


def test_no_statement_is_cached_or_named_twice():
    url, args = for_transaction_pooler(make_url("postgresql+asyncpg://u@db/x"), {"timeout": 5})
    assert url.query["prepared_statement_cache_size"] == "0"
    assert args["statement_cache_size"] == 0 and args["timeout"] == 5
    names = {args["prepared_statement_name_func"]() for _ in range(100)}
    assert len(names) == 100

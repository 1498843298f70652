"""Rows straight from OneCrew's own database: one SELECT per kind, streamed through a server-side cursor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from onecrew_chat.accounts.directory_import import SourceError, SourceRefused, SourceRow
from onecrew_chat.config import to_async_url


def _plain(value: Any) -> Any:
    """A database value as the import's rows take it (uuid columns become their text)."""
    return str(value) if isinstance(value, uuid.UUID) else value


def _words(exc: Exception) -> str:
    """One line about a failed query or connection, without the password or the whole statement."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return f"{type(cause).__name__}: {first[:300]}"


class SqlSource:
    """The rows of one SELECT against `url` (any DATABASE_URL form), numbered from 1 in the order they come."""

    position_word = "row"

    def __init__(self, url: str, query: str):
        try:
            self.engine: AsyncEngine = create_async_engine(to_async_url(url), poolclass=NullPool)
        except (ValueError, ArgumentError) as exc:
            raise SourceRefused(f"--from-sql: {exc}") from None
        self.query = query.strip().rstrip(";")
        self.name = make_url(url).render_as_string(hide_password=True)

    async def total(self) -> int | None:
        """`SELECT count(*)` over the same SELECT, for the progress bar."""
        try:
            async with self.engine.connect() as conn:
                # The operator's own query (a setting), wrapped to count its rows.
                counted = text(f"SELECT count(*) FROM ({self.query}) AS import_rows")  # noqa: S608
                count: int = (await conn.execute(counted)).scalar_one()
                return count
        except (SQLAlchemyError, OSError) as exc:
            raise SourceRefused(f"cannot run the SELECT on {self.name}: {_words(exc)}") from None

    async def chunks(self, size: int) -> AsyncIterator[list[SourceRow]]:
        """The SELECT's rows, fetched `size` at a time from a server-side cursor."""
        number = 0
        try:
            async with self.engine.connect() as conn:
                result = await conn.stream(text(self.query))
                async for partition in result.mappings().partitions(size):
                    rows = []
                    for row in partition:
                        number += 1
                        rows.append(SourceRow(number, {key: _plain(value) for key, value in row.items()}))
                    yield rows
        except (SQLAlchemyError, OSError) as exc:
            if not number:
                raise SourceRefused(f"cannot run the SELECT on {self.name}: {_words(exc)}") from None
            raise SourceError(f"the SELECT on {self.name} failed after {number} rows: {_words(exc)}") from None

    async def close(self) -> None:
        """Release the connection pool (NullPool: nothing is kept, but the engine is disposed cleanly)."""
        await self.engine.dispose()

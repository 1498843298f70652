"""Fixed reads of the hot paths run on asyncpg itself on PostgreSQL, outside any transaction.

SQLAlchemy's execute costs more than the query: the session, compiling (a cache lookup and the parameters
expanded each time), the execution context and the result. A `DriverRead` is compiled once, by SQLAlchemy for
this dialect, and sent straight to the pooled asyncpg connection with the same parameter and result conversions
SQLAlchemy would apply (an existing pair's create spends a third less CPU). Anywhere else the statement runs
through SQLAlchemy as usual: on SQLite, and in a transaction, whose BEGIN SQLAlchemy sends lazily (behind a
transaction pooler every read is in one: db.reads_only). So does a read the driver fails: run again through
SQLAlchemy, the failure is classified, and a lost connection dropped from the pool, as for any other statement.

The conversions are SQLAlchemy's own compiled processors (`_bind_processors`, `_result_columns`), not public API:
SQLAlchemy is pinned, and tests/integration/test_driver_reads.py compares every read with SQLAlchemy's answer, so an
upgrade that changes them fails there first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from onecrew_chat.logging import get_logger

log = get_logger(__name__)

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    """A statement as asyncpg takes it: the SQL with $n parameters, their names in order, and the conversions."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.defaults[name] for name in self.names]
        return [
            value if bind is None or value is None else bind(value)
            for value, bind in zip(values, self.binds, strict=True)
        ]

    def rows(self, records: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not any(self.results):
            return [tuple(record) for record in records]
        return [
            tuple(
                value if result is None else result(value) for value, result in zip(record, self.results, strict=True)
            )
            for record in records
        ]


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("a driver read takes lists as one array parameter (= ANY), not an expanding IN")
    names = tuple(compiled.positiontup or ())
    binds = compiled._bind_processors
    return _Compiled(
        sql=compiled.string,
        names=names,
        defaults=dict(compiled.params),
        binds=tuple(binds.get(name) for name in names),
        results=tuple(entry.type._cached_result_processor(dialect, None) for entry in compiled._result_columns),
    )


async def _through_sqlalchemy(
    session: AsyncSession, statement: Select[Any], params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    rows: Sequence[Sequence[Any]] = (await session.execute(statement, params)).all()
    return rows


class DriverRead:
    """A SELECT built once, run on the driver where it can be (see the module's docstring).

    `statement` is the form for PostgreSQL (lists as `= ANY(:array)`, which asyncpg binds as one parameter);
    `portable`, when given, is the same read for the other databases (lists as expanding `IN`).
    """

    def __init__(self, statement: Select[Any], portable: Select[Any] | None = None) -> None:
        self.statement = statement
        self.portable = statement if portable is None else portable
        self._compiled: _Compiled | None = None

    async def rows(self, session: AsyncSession, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows, as tuples, of the read with these parameters."""
        connection = await session.connection()
        dialect = connection.dialect
        if dialect.name != "postgresql":
            return await _through_sqlalchemy(session, self.portable, params)
        adapted: Any = (await connection.get_raw_connection()).dbapi_connection
        sync = connection.sync_connection
        if sync is None or adapted is None or not adapted.autocommit:
            return await _through_sqlalchemy(session, self.statement, params)
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = _compile(self.statement, dialect)
        arguments = compiled.arguments(params)
        # The statement event SQLAlchemy would fire (no cursor, no context): counters and listeners see every read.
        sync.dispatch.before_cursor_execute(sync, None, compiled.sql, arguments, None, False)
        try:
            records = await adapted.driver_connection.fetch(compiled.sql, *arguments)
        except Exception as exc:
            # SQLAlchemy runs it again and raises what it would have raised (or answers, when it was passing).
            log.warning("db.driver_read_failed", error=type(exc).__name__)
            return await _through_sqlalchemy(session, self.statement, params)
        return compiled.rows(records)

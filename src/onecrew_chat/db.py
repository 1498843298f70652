"""Engine and session factories, the UTC datetime column type and the migration runner."""

from __future__ import annotations

import contextlib
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import DateTime, String, event, exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import Pool
from sqlalchemy.types import TypeDecorator

from onecrew_chat.config import DB_POOL_SIZE, Settings
from onecrew_chat.database_url import driver_target, to_async_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The engine's execution option that says DATABASE_URL is a transaction pooler (ONECREW_DB_TRANSACTION_POOLER).
TRANSACTION_POOLER = "onecrew_transaction_pooler"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of datetime the code handles)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use onecrew_chat.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class EnumString(TypeDecorator[E], Generic[E]):
    """A StrEnum stored as its value in a VARCHAR (no database enum type): read back as the enum's member, and a
    value outside the enum refused before it is written."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def make_engine(settings: Settings | None = None, *, url: str | None = None) -> AsyncEngine:
    """Create the async engine for the configured database (SQLite tuned for one writer).

    On PostgreSQL the pool is ONECREW_DB_POOL_SIZE + ONECREW_DB_MAX_OVERFLOW connections, each started with the
    statement and lock timeouts and DATABASE_URL's libpq parameters (database_url.driver_target).
    """
    if url is None:
        assert settings is not None, "make_engine needs settings or a url"
        url = settings.database_url or f"sqlite:///{settings.sqlite_path}"
    target = driver_target(url, server_settings=settings.database_server_settings if settings else None)
    if target.is_sqlite:
        path = target.url.database or ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(target.url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    pool_size = settings.db_pool_size if settings else DB_POOL_SIZE
    max_overflow = settings.db_max_overflow if settings else 0
    engine_url, connect_args = target.url, target.connect_args
    pooler = settings is not None and settings.db_transaction_pooler
    if pooler:
        engine_url, connect_args = for_transaction_pooler(engine_url, connect_args)
    # Last in, first out: the connection just returned serves the next request (warm, and not idle long enough to
    # need a ping), and the ones a burst opened stay idle at the back instead of taking turns.
    engine = create_async_engine(
        engine_url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_use_lifo=True,
        execution_options={TRANSACTION_POOLER: pooler},
    )
    ping_idle_connections(engine)
    mark_connect_failures(engine)
    return engine


def for_transaction_pooler(url: URL, connect_args: dict[str, Any]) -> tuple[URL, dict[str, Any]]:
    """The engine's URL and asyncpg arguments for PgBouncer in transaction mode (docs/operations.md).

    The next transaction may run on another server connection, so nothing prepared may be reused by name:
    SQLAlchemy's and asyncpg's statement caches are off, and each statement gets a unique name, so that the
    names of two clients never meet on one server connection.
    """
    args = {
        **connect_args,
        "statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__onecrew_{uuid.uuid4().hex}__",
    }
    return url.update_query_dict({"prepared_statement_cache_size": "0"}), args


def mark_connect_failures(engine: AsyncEngine) -> None:
    """A connection the database will not give (it refuses connections, the database or role is gone, it is
    starting or shutting down, too many clients) is raised as a lost connection (`connection_invalidated`), as
    a connection cut mid-statement is: the database is unusable right now, and the request answers 503
    `database_unavailable` with Retry-After, whatever SQLSTATE the refusal had (e.g. 55000 for ALLOW_CONNECTIONS
    false, 3D000 for a dropped database)."""

    def _connect_failed(context: Any) -> None:
        # No Connection yet: the error came from opening one (a statement's own errors always have one).
        if context.connection is None and context.sqlalchemy_exception is not None:
            context.is_disconnect = True

    event.listen(engine.sync_engine, "handle_error", _connect_failed)


# A pooled connection used less than this long ago is handed out as it is; one idle longer is pinged first.
PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "onecrew_idle_since"


@dataclass
class IdlePings:
    """How many checkouts of an engine's pool pinged their connection (db_counters reports it)."""

    idle_s: float
    count: int = 0


_PINGS: weakref.WeakKeyDictionary[Pool, IdlePings] = weakref.WeakKeyDictionary()


def idle_pings(engine: AsyncEngine) -> IdlePings | None:
    """The ping count of an engine made by make_engine for PostgreSQL (None for SQLite)."""
    return _PINGS.get(engine.sync_engine.pool)


def ping_idle_connections(engine: AsyncEngine, idle_s: float = PING_AFTER_IDLE_S) -> IdlePings:
    """Ping a pooled connection before handing it out only when it sat unused for `idle_s` or more.

    SQLAlchemy's pool_pre_ping pings on every checkout, which on asyncpg is three round trips (BEGIN, an empty
    statement, ROLLBACK): more than a cached read's own work. A connection in steady use proved itself
    moments ago; one that sat idle is the one a database restart or a proxy's idle timeout may have cut. A ping
    that fails invalidates the pool (every connection older than now is replaced) and the checkout gets a new
    connection. A connection cut while in steady use fails its statement instead: SQLAlchemy invalidates the pool
    on that disconnect, and the request answers 503 `database_unavailable` (retrying is safe).
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect
    pings = _PINGS[pool] = IdlePings(idle_s)

    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # None: a new connection (the info goes with the connection)
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        pings.count += 1
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError(f"the ping of a connection idle for {idle_s:g} s failed") from error

    event.listen(pool, "checkin", _checked_in)
    event.listen(pool, "checkout", _checked_out)
    return pings


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


_READERS: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]] = (
    weakref.WeakKeyDictionary()
)


def _reader(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions like `sessionmaker`'s whose connections run in autocommit (made once per sessionmaker).

    Behind a transaction pooler, `sessionmaker` itself: asyncpg prepares a statement in one round trip and runs it
    in the next, and outside a transaction PgBouncer may send the second to another server connection, which never
    saw the statement ("prepared statement ... does not exist"); a transaction keeps both on one.
    """
    reader = _READERS.get(sessionmaker)
    if reader is None:
        engine: AsyncEngine = sessionmaker.kw["bind"]
        if engine.get_execution_options().get(TRANSACTION_POOLER):
            reader = sessionmaker
        else:
            reader = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
        _READERS[sessionmaker] = reader
    return reader


@contextlib.asynccontextmanager
async def reads_only(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Reads with no transaction around them (but behind a transaction pooler, see `_reader`): on PostgreSQL no
    BEGIN and no COMMIT, two of a lookup's four round trips. Each statement sees the data committed when it starts, as it would in a READ COMMITTED transaction, so
    only reads that need nothing from each other belong here; whatever writes opens a `unit_of_work`."""
    async with _reader(sessionmaker)() as session:
        yield session


@contextlib.asynccontextmanager
async def single_statement(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in autocommit for one statement that is atomic on its own (e.g. PostgreSQL's writing WITH): each
    statement commits as it ends, so no BEGIN and no COMMIT, and a block that runs two is two commits. Behind a
    transaction pooler, a `unit_of_work` (see `_reader`)."""
    reader = _reader(sessionmaker)
    if reader is sessionmaker:
        async with unit_of_work(sessionmaker) as session:
            yield session
        return
    async with reader() as session:
        yield session


@contextlib.asynccontextmanager
async def unit_of_work(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back when it raises (the request's and worker's commit)."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def alembic_config(database_url: str) -> Config:
    """An Alembic Config pointing at the packaged migrations and the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", to_async_url(database_url).replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations (synchronous; call it outside a running event loop)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade_database(database_url: str, revision: str) -> None:
    """Undo migrations down to `revision` (synchronous, like upgrade_database)."""
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The Alembic revision the database is at, or None when it was never migrated."""
    from sqlalchemy import inspect, text

    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
        if not has_table:
            return None
        row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        return row[0] if row else None


async def database_revision(settings: Settings) -> str | None:
    """The migration the configured database is at, on an engine of its own (for commands and start-up checks)."""
    engine = make_engine(settings)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


def head_revision() -> str:
    """The newest migration shipped with this code."""
    from alembic.script import ScriptDirectory

    cfg = alembic_config("sqlite://")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None, "the packaged migrations have a head"
    return head

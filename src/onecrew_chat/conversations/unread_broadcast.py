"""Unread caches of every API process dropped together: PostgreSQL NOTIFY on a webhook's commit, LISTEN in each.

A webhook that changes unread state sends `NOTIFY onecrew_unread, '<stream id>,<stream id>,...'` inside its
own transaction, so PostgreSQL delivers it exactly when (and only if) the change is committed. Every API
process keeps one dedicated asyncpg connection (outside the pool) listening on the channel and drops the
named profiles from its cache as the notification arrives. A count read before the commit and cached after
the notification is refused by the cache's ticket, so no process keeps a count older than the change.

When the listening connection is lost, notifications sent meanwhile are lost with it: the process forgets
every cached count when it reconnects. In every case an entry expires after ONECREW_UNREAD_CACHE_TTL_S, the
upper bound of staleness. SQLite runs one process (its in-process invalidation suffices): nothing is sent or
listened to there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable, Iterator

import asyncpg
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.conversations.unread import UnreadCache, unread_cache
from onecrew_chat.logging import get_logger
from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

CHANNEL = "onecrew_unread"
# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; stream ids are ASCII.
MAX_PAYLOAD = 7_000
CONNECT_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 30.0
# Built once: a webhook only binds the payload.
NOTIFY = select(func.pg_notify(CHANNEL, bindparam("payload", type_=String())))


def unread_payloads(keys: Iterable[str]) -> Iterator[str]:
    """Comma-joined keys, in as few payloads under MAX_PAYLOAD as it takes."""
    batch: list[str] = []
    size = 0
    for key in sorted(keys):
        if batch and size + len(key) + 1 > MAX_PAYLOAD:
            yield ",".join(batch)
            batch, size = [], 0
        batch.append(key)
        size += len(key) + 1
    if batch:
        yield ",".join(batch)


async def announce_unread_change(session: AsyncSession, keys: Iterable[str]) -> None:
    """Queue the notification in the caller's transaction (PostgreSQL delivers it on commit; SQLite: nothing)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for payload in unread_payloads(keys):
        await session.execute(NOTIFY, {"payload": payload})


class UnreadListener:
    """One LISTEN connection that drops the named profiles from this process's cache; reconnects when lost."""

    def __init__(self, dsn: str, cache: UnreadCache) -> None:
        self._dsn = dsn
        self._cache = cache
        self._stop = asyncio.Event()
        self.listening = asyncio.Event()
        self._attempted = asyncio.Event()  # the first connection attempt ended (listening, or failed)
        self._task: asyncio.Task[None] | None = None

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._cache.invalidate(key for key in payload.split(",") if key)

    async def start(self, *, wait_s: float = CONNECT_TIMEOUT_S) -> None:
        """Start listening; waits up to `wait_s` for the first attempt (a failed one is retried in the background)."""
        self._task = asyncio.create_task(self._run(), name="unread-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), timeout=wait_s)
        if not self.listening.is_set():
            log.warning("unread.listener_not_ready", wait_s=wait_s)

    async def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notify)
                self._cache.invalidate_all()  # whatever was sent while nobody listened is lost
                self.listening.set()
                self._attempted.set()
                log.info("unread.listener_started", channel=CHANNEL)
                delay = 0.5
                await _first(self._stop.wait(), lost.wait())
            except Exception as exc:  # the database is down or refuses us: retry with backoff
                log.warning("unread.listener_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            finally:
                self._attempted.set()
                self.listening.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1.0)
            if not self._stop.is_set():
                # Backoff between reconnects: wait for stop or the delay, whichever comes first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=CONNECT_TIMEOUT_S)


async def _first(*awaitables: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def start_unread_listener(runtime: Runtime) -> UnreadListener | None:
    """The listener for this process on PostgreSQL (None on SQLite, whose single process needs none)."""
    url = runtime.engine.url
    if url.get_backend_name() != "postgresql":
        return None
    settings = runtime.settings
    if settings.db_listen_url:
        dsn = settings.db_listen_url
    elif settings.db_transaction_pooler:
        # LISTEN belongs to a session, which a transaction pooler does not keep: cached counts expire instead.
        log.warning(
            "unread.listener_off", reason="DATABASE_URL is a transaction pooler and ONECREW_DB_LISTEN_URL is unset"
        )
        return None
    else:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = UnreadListener(dsn, unread_cache(runtime))
    await listener.start()
    return listener

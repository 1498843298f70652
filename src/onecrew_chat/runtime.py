"""The long-lived objects one process shares: settings, database, Stream gateway, the worker's state and caches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from onecrew_chat.auth import TokenVerifier
from onecrew_chat.config import Settings
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.db_counters import DatabaseCounters
from onecrew_chat.metrics import CONFIG_INFO
from onecrew_chat.outbox.status import WorkerStatus
from onecrew_chat.stream.client import StreamGateway

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Shared(Generic[T]):
    """A process-wide object of a layer above the runtime (a cache, a coalescer), made on first use by `make`.

    Its owner declares it once, beside its type (`UNREAD = Shared("unread counts", make)`), and reads it with
    `runtime.shared(UNREAD)`, typed. The runtime cannot name those types itself: their modules import it.
    """

    name: str
    make: Callable[[Runtime], T]


@dataclass
class Runtime:
    """Everything a request or a worker needs; built by `build_runtime`, closed by `close`.

    It is the outbox worker's `WorkerHost`: `outbox_wakeup` ends the worker's wait between rounds (`kick`), and
    `worker_status` is set while this process runs a worker.
    """

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    stream: StreamGateway
    verifier: TokenVerifier
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    worker_status: WorkerStatus | None = None
    # Only with ONECREW_DEBUG_ENDPOINTS: what the process asked of its database (GET /_debug/process).
    db_counters: DatabaseCounters | None = None
    _shared: dict[Shared[Any], object] = field(default_factory=dict, init=False, repr=False)

    def shared(self, slot: Shared[T]) -> T:
        """The process's object of `slot`, made on first use."""
        if slot not in self._shared:
            self._shared[slot] = slot.make(self)
        return cast(T, self._shared[slot])

    def made(self, slot: Shared[T]) -> T | None:
        """The process's object of `slot` if one was made, else None (what shutting down has to close)."""
        return cast(T | None, self._shared.get(slot))

    async def close(self) -> None:
        """Release the Stream HTTP pool and the database pool."""
        await self.stream.close()
        await self.engine.dispose()


def build_runtime(settings: Settings, *, stream: StreamGateway | None = None) -> Runtime:
    """Create (without connecting) the engine, the Stream gateway and the JWT verifier."""
    engine = make_engine(settings)
    CONFIG_INFO.clear()  # one process, one configuration: the latest runtime's
    CONFIG_INFO.labels(settings.mode_name, settings.stream_target).set(1)
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        stream=stream or StreamGateway.from_settings(settings),
        verifier=TokenVerifier(settings),
    )

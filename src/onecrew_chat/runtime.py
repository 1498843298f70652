"""The long-lived objects one process shares: settings, database, Stream gateway, caches and the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from onecrew_chat.auth import TokenVerifier
from onecrew_chat.config import Settings
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.metrics import CONFIG_INFO
from onecrew_chat.stream.client import StreamGateway


@dataclass
class Runtime:
    """Everything a request or a worker needs; built by `build_runtime`, closed by `close`."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    stream: StreamGateway
    verifier: TokenVerifier
    extras: dict[str, Any] = field(default_factory=dict)

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

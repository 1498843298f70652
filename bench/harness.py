"""Set-up shared by the scenarios: a migrated database, the emulator over loopback, the app and counters."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from sqlalchemy import event

from onecrew_chat.api.app import create_app
from onecrew_chat.config import Settings
from onecrew_chat.db import upgrade_database
from onecrew_chat.dbadmin import create_database, drop_database, empty_all_tables
from stream_emulator import Emulator, EmulatorServer

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123"
STREAM_KEY = "bench-key"
STREAM_SECRET = "bench-stream-secret-0123456789abcdef"
SERVICE_TOKEN = "bench-service-token-0123456789abcdef"


def bearer(sub: str) -> dict[str, str]:
    """The headers the app sends."""
    token = jwt.encode({"sub": sub, "iat": int(time.time()), "exp": int(time.time()) + 3600}, JWT_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@dataclass
class Sample:
    """One scenario's measurements."""

    name: str
    database: str
    server_ms: list[float] = field(default_factory=list)
    stream_calls: list[int] = field(default_factory=list)
    db_statements: list[int] = field(default_factory=list)
    target_ms: float | None = None

    def summary(self) -> dict:
        """Medians and percentiles for the table and the JSON file."""
        ms = sorted(self.server_ms)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))] if ms else None
        return {
            "scenario": self.name,
            "database": self.database,
            "n": len(ms),
            "median_ms": round(statistics.median(ms), 3) if ms else None,
            "p95_ms": round(p95, 3) if p95 is not None else None,
            "stream_calls_median": statistics.median(self.stream_calls) if self.stream_calls else None,
            "db_statements_median": statistics.median(self.db_statements) if self.db_statements else None,
            "target_ms": self.target_ms,
        }


class Bench:
    """The app over ASGI, the emulator on loopback, and counters for Stream calls and SQL statements."""

    def __init__(self, database: str, database_url: str, emulator: Emulator, base_url: str, **overrides):
        self.database = database
        self.database_url = database_url
        self.emulator = emulator
        settings = Settings(
            database_url=database_url,
            stream_api_key=STREAM_KEY,
            stream_api_secret=STREAM_SECRET,
            stream_base_url=base_url,
            jwt_secret=JWT_SECRET,
            service_token=SERVICE_TOKEN,
            run_worker=False,
            log_level="error",
            **overrides,
        )
        self.app = create_app(settings)
        self.runtime = self.app.state.runtime
        self.statements = 0
        event.listen(self.runtime.engine.sync_engine, "before_cursor_execute", self._count)
        self.client: httpx.AsyncClient | None = None

    def _count(self, *_args, **_kwargs) -> None:
        self.statements += 1

    async def request(self, sample: Sample, method: str, path: str, *, sub: str, **kwargs) -> httpx.Response:
        """Send one request and record server time (Server-Timing), Stream calls and SQL statements."""
        calls_before = self.emulator.count()
        statements_before = self.statements
        response = await self.client.request(method, path, headers=bearer(sub), **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} -> {response.status_code} {response.text[:300]}")
        timing = response.headers.get("server-timing", "")
        sample.server_ms.append(float(timing.split("dur=")[1]) if "dur=" in timing else float("nan"))
        sample.stream_calls.append(self.emulator.count() - calls_before)
        sample.db_statements.append(self.statements - statements_before)
        return response


async def reset_database(url: str) -> None:
    """Empty every table (the schema stays)."""
    await empty_all_tables(url)


def prepare_database(kind: str, postgres_admin_url: str) -> tuple[str, callable]:
    """A fresh migrated database of the given kind, and a function that drops it."""
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="onecrew-bench-")
        url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        upgrade_database(url)
        return url, lambda: None
    name = f"onecrew_bench_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(postgres_admin_url, name))
    upgrade_database(url)
    return url, lambda: asyncio.run(drop_database(postgres_admin_url, name))


@asynccontextmanager
async def running(bench: Bench):
    """Run the app's lifespan and an HTTP client over it."""
    async with bench.app.router.lifespan_context(bench.app):
        transport = httpx.ASGITransport(app=bench.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            bench.client = client
            yield bench


def start_emulator() -> tuple[Emulator, EmulatorServer]:
    """The emulator on a free loopback port, in its own thread."""
    emulator = Emulator(api_key=STREAM_KEY, api_secret=STREAM_SECRET)
    server = EmulatorServer(emulator)
    server.start()
    return emulator, server

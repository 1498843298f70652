"""Requests sent over keep-alive HTTP at a fixed concurrency, with latency percentiles and per-request costs."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.processes import Process, database_counters, stream_calls


@dataclass(frozen=True)
class Call:
    """One request, prepared before the clock starts."""

    method: str
    path: str
    headers: dict[str, str]
    json: object = None
    content: bytes | None = None


@dataclass
class Run:
    """One scenario at one concurrency: what the table and the JSON show."""

    scenario: str
    database: str
    workers: int
    concurrency: int
    requests: int = 0
    errors: int = 0
    retried: int = 0
    first_error: str | None = None
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    emulator_cpu_s: float = 0.0
    stream_calls: int = 0
    counters: dict[str, int] | None = None

    def summary(self) -> dict:
        """Requests/s, latency percentiles and costs per request."""
        ms = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(ms[min(len(ms) - 1, int(len(ms) * p))], 2) if ms else None

        per = (lambda value: round(value / self.requests, 3)) if self.requests else (lambda value: None)
        return {
            "scenario": self.scenario,
            "database": self.database,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "retried": self.retried,
            "first_error": self.first_error,
            "requests_per_s": round((self.requests - self.errors) / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(statistics.median(ms), 2) if ms else None,
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "server_cpu_ms_per_request": per(self.server_cpu_s * 1000),
            "emulator_cpu_ms_per_request": per(self.emulator_cpu_s * 1000),
            "stream_calls_per_request": per(self.stream_calls),
            "sql_statements_per_request": per(self.counters["statements"]) if self.counters else None,
            "db_round_trips_per_request": per(self.counters["round_trips"]) if self.counters else None,
        }


class Target:
    """The API and the emulator under test, and a synchronous client for their counters."""

    def __init__(self, api: Process, api_url: str, emulator: Process, emulator_url: str, workers: int) -> None:
        self.api, self.api_url = api, api_url
        self.emulator, self.emulator_url = emulator, emulator_url
        self.workers = workers
        self.admin = httpx.Client(timeout=30)

    def counters(self) -> dict[str, int] | None:
        # With several API processes the request lands on any one of them: SQL counters only with one.
        return database_counters(self.admin, self.api_url) if self.workers == 1 else None

    async def run(
        self,
        scenario: str,
        database: str,
        concurrency: int,
        calls: list[Call],
        check: Callable[[httpx.Response], None] | None = None,
    ) -> Run:
        """Send `calls` from `concurrency` keep-alive connections; costs read before and after."""
        run = Run(scenario, database, self.workers, concurrency, requests=len(calls))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=self.api_url, limits=limits, timeout=60) as client:
            # Open the connections first, so that the measurement holds no TCP handshakes.
            await asyncio.gather(*(client.get("/healthz") for _ in range(concurrency)))
            queue: asyncio.Queue[Call] = asyncio.Queue()
            for call in calls:
                queue.put_nowait(call)
            before = (
                self.api.cpu_s(),
                self.emulator.cpu_s(),
                stream_calls(self.admin, self.emulator_url),
                self.counters(),
            )
            started = time.perf_counter()
            await asyncio.gather(*(self._client(client, queue, run, check) for _ in range(concurrency)))
            run.seconds = time.perf_counter() - started
            after = (
                self.api.cpu_s(),
                self.emulator.cpu_s(),
                stream_calls(self.admin, self.emulator_url),
                self.counters(),
            )
        run.server_cpu_s = after[0] - before[0]
        run.emulator_cpu_s = after[1] - before[1]
        run.stream_calls = after[2] - before[2]
        if before[3] is not None and after[3] is not None:
            run.counters = {k: after[3][k] - before[3][k] for k in ("statements", "round_trips")}
        return run

    async def _client(
        self,
        client: httpx.AsyncClient,
        queue: asyncio.Queue[Call],
        run: Run,
        check: Callable[[httpx.Response], None] | None,
    ) -> None:
        while not queue.empty():
            call = queue.get_nowait()
            started = time.perf_counter()
            try:
                try:
                    response = await client.request(
                        call.method, call.path, headers=call.headers, json=call.json, content=call.content
                    )
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # The server closed a pooled keep-alive connection as it was reused (no answer came back): sent
                    # again once on a new connection, as the app's HTTP stack does; counted apart as `retried`.
                    run.retried += 1
                    response = await client.request(
                        call.method, call.path, headers=call.headers, json=call.json, content=call.content
                    )
            except httpx.TransportError as exc:  # counted, not fatal: the table shows what failed under load
                run.errors += 1
                run.first_error = run.first_error or f"{type(exc).__name__}: {exc}"[:200]
                continue
            if response.status_code != 200:
                run.errors += 1
                run.first_error = run.first_error or f"{response.status_code} {response.text[:200]}"
                continue
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            if check is not None:
                check(response)

    def close(self) -> None:
        """Close the counters' client."""
        self.admin.close()

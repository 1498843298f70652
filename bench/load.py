"""Requests sent over keep-alive HTTP (bench/wire.py) at a fixed concurrency, with latency percentiles and
per-request costs."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from bench import wire
from bench.processes import Process, database_counters, database_cpu_s, machine_cpu_s, stream_calls

# A request that gets no answer within this long counts as failed.
REQUEST_TIMEOUT_S = 60.0


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
    client_cpu_s: float = 0.0
    database_cpu_s: float | None = None
    database_sessions: int | None = None
    machine_busy: float | None = None
    load_1m: float = 0.0
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
            # How many cores the API processes kept busy: near 1.0 per process when the API sets the pace.
            "server_cores": round(self.server_cpu_s / self.seconds, 2) if self.seconds else None,
            "emulator_cpu_ms_per_request": per(self.emulator_cpu_s * 1000),
            # The load generator is on the same cores: what it costs, and how busy every core was meanwhile.
            "client_cpu_ms_per_request": per(self.client_cpu_s * 1000),
            "database_cpu_ms_per_request": per(self.database_cpu_s * 1000) if self.database_cpu_s is not None else None,
            "database_connections_opened": self.database_sessions,
            "machine_busy_percent": round(self.machine_busy * 100) if self.machine_busy is not None else None,
            "load_1m": round(self.load_1m, 2),
            "stream_calls_per_request": per(self.stream_calls),
            "sql_statements_per_request": per(self.counters["statements"]) if self.counters else None,
            "db_round_trips_per_request": per(self.counters["round_trips"]) if self.counters else None,
        }


class Target:
    """The API and the emulator under test, and a synchronous client for their counters."""

    def __init__(
        self,
        api: Process,
        api_url: str,
        emulator: Process,
        emulator_url: str,
        workers: int,
        postgres_url: str | None = None,
    ) -> None:
        self.api, self.api_url = api, api_url
        self.postgres_url = postgres_url  # PostgreSQL's own CPU is read for this database (None: SQLite, in the API)
        self.emulator, self.emulator_url = emulator, emulator_url
        self.workers = workers
        self.host = urlsplit(api_url).netloc
        self.admin = httpx.Client(timeout=30)

    def counters(self) -> dict[str, int] | None:
        # With several API processes the request lands on any one of them: SQL counters only with one.
        return database_counters(self.admin, self.api_url) if self.workers == 1 else None

    async def run(self, scenario: str, database: str, concurrency: int, calls: list[Call]) -> Run:
        """Send `calls` from `concurrency` keep-alive connections; costs read before and after."""
        run = Run(scenario, database, self.workers, concurrency, requests=len(calls), load_1m=os.getloadavg()[0])
        # Open the connections first (each answers once), so that the measurement holds no TCP handshakes.
        connections = await asyncio.gather(*(wire.Connection.open(self.api_url) for _ in range(concurrency)))
        try:
            healthz = self._encode(Call("GET", "/healthz", {}))
            await asyncio.gather(*(connection.send(healthz) for connection in connections))
            database_before = await database_cpu_s(self.postgres_url) if self.postgres_url else None
            queue: asyncio.Queue[tuple[Call, bytes]] = asyncio.Queue()
            encoded: dict[int, bytes] = {}  # a scenario often repeats one Call object
            for call in calls:
                queue.put_nowait((call, encoded.get(id(call)) or encoded.setdefault(id(call), self._encode(call))))
            before = (
                self.api.cpu_s(),
                self.emulator.cpu_s(),
                stream_calls(self.admin, self.emulator_url),
                self.counters(),
            )
            machine_before, client_before = machine_cpu_s(), time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(self._client(connections, index, queue, run) for index in range(concurrency)))
            run.seconds = time.perf_counter() - started
            machine_after, client_after = machine_cpu_s(), time.process_time()
            database_after = await database_cpu_s(self.postgres_url) if self.postgres_url else None
            after = (
                self.api.cpu_s(),
                self.emulator.cpu_s(),
                stream_calls(self.admin, self.emulator_url),
                self.counters(),
            )
        finally:
            await asyncio.gather(*(connection.close() for connection in connections))
        run.client_cpu_s = client_after - client_before
        if database_before is not None and database_after is not None:
            # A server process started during the run counts whole; one that ended (a connection the pool closed)
            # is lost: a lower bound when the run opened connections.
            (cpu_before, sessions_before), (cpu_after, sessions_after) = database_before, database_after
            run.database_cpu_s = sum(cpu - cpu_before.get(pid, 0.0) for pid, cpu in cpu_after.items())
            run.database_sessions = sessions_after - sessions_before - 1  # less the reading's own connection
        busy, total = (after_s - before_s for after_s, before_s in zip(machine_after, machine_before, strict=True))
        run.machine_busy = busy / total if total else None
        run.server_cpu_s = after[0] - before[0]
        run.emulator_cpu_s = after[1] - before[1]
        run.stream_calls = after[2] - before[2]
        if before[3] is not None and after[3] is not None:
            run.counters = {k: after[3][k] - before[3][k] for k in ("statements", "round_trips")}
        return run

    def _encode(self, call: Call) -> bytes:
        body = call.content if call.json is None else wire.json_body(call.json)
        headers = call.headers if call.json is None else {**call.headers, "Content-Type": "application/json"}
        return wire.encode(call.method, call.path, self.host, headers, body)

    async def _client(
        self, connections: list[wire.Connection], index: int, queue: asyncio.Queue[tuple[Call, bytes]], run: Run
    ) -> None:
        while not queue.empty():
            call, request = queue.get_nowait()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    try:
                        status, body = await connections[index].send(request)
                    except wire.Closed:
                        # The server closed the keep-alive connection as it was reused (no answer came back): sent
                        # again once on a new connection, as the app's HTTP stack does; counted apart as `retried`.
                        run.retried += 1
                        connections[index] = await wire.Connection.open(self.api_url)
                        status, body = await connections[index].send(request)
            except (wire.Closed, OSError, TimeoutError) as exc:  # counted, not fatal: the table shows what failed
                run.errors += 1
                run.first_error = run.first_error or f"{call.method} {call.path}: {type(exc).__name__}: {exc}"[:200]
                continue
            if status != 200:
                run.errors += 1
                run.first_error = run.first_error or f"{status} {body[:200].decode(errors='replace')}"
                continue
            run.latencies_ms.append((time.perf_counter() - started) * 1000)

    def close(self) -> None:
        """Close the counters' client."""
        self.admin.close()

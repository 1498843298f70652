"""`onecrew-chat worker`'s own small HTTP server: /metrics, /healthz and /readyz on ONECREW_WORKER_METRICS_PORT.

It runs in the worker's event loop (uvicorn's server, without its signal handling, which stays the worker's),
so nothing blocks and nothing runs in a thread. /metrics shows the same database gauges as the API's.

- /healthz (liveness: a restart may help): 200 while the outbox loop runs and makes progress; 503 with why when it
  has not started, has stopped (crashed), has made no progress for longer than its bound (stuck), or has failed
  every round for longer than that bound.
- /readyz (does it do its work now): 200 when alive, not paused (Stream refusing our secret), its last round did
  not fail, and the database answers within 1 s; 503 with every reason otherwise. It also sets
  `onecrew_ready{check="worker"|"database"}`, as each /metrics scrape does, for the alert rules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from onecrew_chat import version
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import READY
from onecrew_chat.observability.collector import refresh_metrics
from onecrew_chat.observability.heartbeat import worker_identity
from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

# The database gets this long to answer a readiness probe (as the API's /readyz).
READY_TIMEOUT_S = 1.0
NOT_STARTED = "the worker's loop has not started"


class MetricsPortUnavailable(Exception):
    """The metrics port cannot be bound; the message says how to choose another."""


def liveness_problem(runtime: Runtime) -> str | None:
    """Why this worker's loop is not alive, or None."""
    status = runtime.worker_status
    return NOT_STARTED if status is None else status.liveness_problem()


async def database_problem(runtime: Runtime) -> str | None:
    """Why the database cannot be used right now, or None (`SELECT 1` within READY_TIMEOUT_S)."""

    async def select_one() -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # Not asyncio.wait_for: it waits for the cancelled check to finish, and a connection the server cut can take
    # its driver's close timeout (10 s) to give up. The probe answers at its bound; the check ends on its own.
    check = asyncio.ensure_future(select_one())
    done, _ = await asyncio.wait({check}, timeout=READY_TIMEOUT_S)
    if not done:
        check.cancel()
        check.add_done_callback(_consume)
        return f"database not reachable: no answer within {READY_TIMEOUT_S:g} s"
    exc = check.exception()
    if exc is None:
        return None
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""  # any failure means "not ready", never a 500
    return f"database not reachable: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _consume(task: asyncio.Future[None]) -> None:
    """Retrieve a detached check's outcome, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def readiness(runtime: Runtime) -> list[str]:
    """Every reason this worker does not do its work now (none: ready); sets onecrew_ready for worker/database."""
    status = runtime.worker_status
    worker = NOT_STARTED if status is None else status.readiness_problem()
    database = await database_problem(runtime)
    READY.labels("worker").set(0 if worker else 1)
    READY.labels("database").set(0 if database else 1)
    return [reason for reason in (worker, database) if reason]


def metrics_app(runtime: Runtime) -> Starlette:
    """The ASGI app: GET /metrics (Prometheus text), GET /healthz (liveness), GET /readyz (readiness)."""

    async def metrics(_request: Request) -> Response:
        await readiness(runtime)
        await refresh_metrics(runtime)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> JSONResponse:
        worker = worker_identity(runtime)
        problem = liveness_problem(runtime)
        if problem is not None:
            return JSONResponse(_error(problem, "not_alive"), status_code=503)
        return JSONResponse(
            {
                "success": True,
                "data": {"status": "ok", "role": "worker", "worker_id": worker.worker_id, "version": version()},
            }
        )

    async def readyz(_request: Request) -> JSONResponse:
        reasons = await readiness(runtime)
        if reasons:
            log.warning("worker.not_ready", reasons=reasons)
            return JSONResponse(_error("; ".join(reasons), "not_ready"), status_code=503)
        worker = worker_identity(runtime)
        return JSONResponse(
            {"success": True, "data": {"status": "ready", "role": "worker", "worker_id": worker.worker_id}}
        )

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)])


def _error(message: str, code: str) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code}


class _LoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: SIGINT/SIGTERM belong to the worker, which stops this server."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsServer:
    """A started metrics server: `port` is the bound one (useful with port 0); `stop()` ends it."""

    def __init__(self, server: _LoopServer, task: asyncio.Task[None], host: str, port: int):
        self._server = server
        self._task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """http://host:port (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Ask the server to finish open requests and close the socket; returns once it has."""
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def start_metrics_server(runtime: Runtime, host: str, port: int) -> MetricsServer:
    """Bind `host:port` (0: any free port) and serve /metrics, /healthz and /readyz in this loop until `stop()`."""
    config = uvicorn.Config(
        metrics_app(runtime), host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    try:
        sock = config.bind_socket()
    except SystemExit as exc:  # uvicorn logs the OSError and exits; say what to do instead
        raise MetricsPortUnavailable(
            f"cannot serve worker metrics on {host}:{port} (in use, or not permitted); "
            "set ONECREW_WORKER_METRICS_PORT to another port, or 0 to serve none"
        ) from exc
    bound = sock.getsockname()[1]
    server = _LoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="worker-metrics")
    listening = asyncio.ensure_future(server.listening.wait())
    await asyncio.wait([listening, task], return_when=asyncio.FIRST_COMPLETED)  # accepting, or failed to start
    listening.cancel()
    if task.done():
        task.result()  # raises what stopped it
        raise MetricsPortUnavailable(f"the worker metrics server on {host}:{bound} stopped at once")
    handle = MetricsServer(server, task, host, bound)
    log.info("worker.metrics_serving", url=handle.url)
    return handle

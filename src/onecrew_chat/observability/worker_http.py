"""`onecrew-chat worker`'s own small HTTP server: /metrics and /healthz on ONECREW_WORKER_METRICS_PORT.

It runs in the worker's event loop (uvicorn's server, without its signal handling, which stays the worker's),
so nothing blocks and nothing runs in a thread. /metrics shows the same database gauges as the API's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from onecrew_chat.logging import get_logger
from onecrew_chat.observability.collector import refresh_metrics
from onecrew_chat.observability.heartbeat import worker_identity
from onecrew_chat.version import version

log = get_logger(__name__)


class MetricsPortUnavailable(Exception):
    """The metrics port cannot be bound; the message says how to choose another."""


def metrics_app(runtime: Any) -> Starlette:
    """The ASGI app: GET /metrics (Prometheus text) and GET /healthz (200 while the worker's loop serves)."""

    async def metrics(_request: Request) -> Response:
        await refresh_metrics(runtime)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> JSONResponse:
        worker = worker_identity(runtime)
        return JSONResponse(
            {
                "success": True,
                "data": {"status": "ok", "role": "worker", "worker_id": worker.worker_id, "version": version()},
            }
        )

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


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


async def start_metrics_server(runtime: Any, host: str, port: int) -> MetricsServer:
    """Bind `host:port` (0: any free port) and serve /metrics and /healthz in this loop until `stop()`."""
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

"""Liveness (/healthz), readiness of this instance (/readyz) and Prometheus metrics (/metrics).

/readyz is about this instance: the database answers, its schema is at this code's migration head, and, when
this process runs the outbox worker, the worker's loop is alive and not paused. Stream's health is reported
as the separate `stream` field (checked at most once a minute, cached, with which Stream: its base URL or the
embedded emulator) and never fails readiness. `mode` says whether the development fallbacks may be in use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from onecrew_chat import version
from onecrew_chat.api.deps import RuntimeDep
from onecrew_chat.api.errors import error_body
from onecrew_chat.api.openapi import error_responses
from onecrew_chat.api.schemas import HealthEnvelope, ReadyEnvelope
from onecrew_chat.api.stream_health import stream_health
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import READY
from onecrew_chat.observability.collector import refresh_metrics
from onecrew_chat.runtime import Runtime
from onecrew_chat.schema_status import read_position, schema_status

router = APIRouter(tags=["health"])
log = get_logger(__name__)

# The database gets this long to answer a readiness probe.
READY_TIMEOUT_S = 1.0


@router.get("/healthz", summary="Liveness", response_model=None, responses={200: {"model": HealthEnvelope}})
async def healthz() -> dict[str, object]:
    """200 as soon as the process serves HTTP, with this process's version; touches neither the database nor Stream."""
    return {"success": True, "data": {"status": "ok", "version": version()}}


async def _probe(name: str, check: Callable[[], Awaitable[object]]) -> tuple[str, float, str | None]:
    """Run one check within READY_TIMEOUT_S: (name, ms, None) or (name, ms, reason in words)."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=READY_TIMEOUT_S)
        reason = None
    except TimeoutError:
        reason = f"{name} not reachable: no answer within {READY_TIMEOUT_S:g} s"
    except _NotReady as exc:
        reason = str(exc)
    except Exception as exc:  # any failure of a dependency means "not ready", never a 500
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        reason = f"{name} not reachable: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return name, round((time.perf_counter() - started) * 1000, 1), reason


class _NotReady(Exception):
    """A check answered, and the answer is "not ready" (the message says why)."""


def _worker_reason(runtime: Runtime) -> str | None:
    """Why this process's worker makes it not ready, or None (also when the process runs no worker)."""
    status = runtime.worker_status
    if status is None:
        return None
    if status.paused:
        return f"worker paused: Stream refuses our credentials ({status.pause_reason}); fix STREAM_API_KEY/SECRET"
    if not status.alive():
        return f"worker not alive: its loop has stopped or made no progress for {status.stale_after_s:g} s"
    return None


@router.get(
    "/readyz",
    summary="Readiness of this instance: database, migrations, worker; Stream's health as a separate field",
    response_model=None,
    responses={200: {"model": ReadyEnvelope}, **error_responses(503)},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the database answers at the migration head and this process's worker (if any) is alive and not
    paused, else 503 with why. `stream` says whether Stream answered its last (cached, once a minute) ping."""

    async def database() -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        schema = schema_status(await read_position(runtime.engine))
        if not schema.usable and schema.known:
            raise _NotReady(
                f"database schema at migration {schema.current} but this code needs {schema.head}; "
                "run `onecrew-chat db upgrade`"
            )
        if not schema.usable:
            raise _NotReady(f"database schema: {schema.problem()}")

    (name, ms, reason), stream = await asyncio.gather(_probe("database", database), stream_health(runtime))
    reasons = [reason] if reason else []
    READY.labels(name).set(0 if reason else 1)
    worker_reason = _worker_reason(runtime)
    if runtime.worker_status is not None:
        READY.labels("worker").set(0 if worker_reason else 1)
    if worker_reason:
        reasons.append(worker_reason)
    if reasons:
        log.warning("health.not_ready", reasons=reasons, stream=stream.as_json()["status"])
        return JSONResponse(error_body("; ".join(reasons), "not_ready"), status_code=503)
    checks: dict[str, dict[str, object]] = {name: {"status": "ok", "ms": ms}}
    if runtime.worker_status is not None:
        checks["worker"] = {"status": "ok"}
    stream_json = {**stream.as_json(), "target": runtime.settings.stream_target}
    data = {"status": "ready", "mode": runtime.settings.mode_name, "checks": checks, "stream": stream_json}
    return JSONResponse({"success": True, "data": data})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Text format"}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition (the one answer that is not JSON, because Prometheus reads this format).

    The "(database)" gauges (outbox depth and oldest age, dead letters, reconcile, drift, workers) are read from
    the database first, at most every 5 s and within 1 s, so every process reports the same true values.
    """
    await refresh_metrics(runtime)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

"""Liveness (/healthz), readiness (/readyz: database and Stream answer) and Prometheus metrics (/metrics)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from onecrew_chat.api.deps import RuntimeDep
from onecrew_chat.api.errors import error_body
from onecrew_chat.api.openapi import error_responses
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import READY
from onecrew_chat.observability.collector import refresh_metrics
from onecrew_chat.schemas import HealthEnvelope, ReadyEnvelope

router = APIRouter(tags=["health"])
log = get_logger(__name__)

# Each dependency gets this long to answer a readiness probe.
READY_TIMEOUT_S = 1.0


@router.get("/healthz", summary="Liveness", response_model=None, responses={200: {"model": HealthEnvelope}})
async def healthz() -> dict:
    """200 as soon as the process serves HTTP; touches neither the database nor Stream."""
    return {"success": True, "data": {"status": "ok"}}


async def _probe(name: str, check: Callable[[], Awaitable[object]]) -> tuple[str, float, str | None]:
    """Run one check within READY_TIMEOUT_S: (name, ms, None) or (name, ms, reason in words)."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=READY_TIMEOUT_S)
        reason = None
    except TimeoutError:
        reason = f"{name} not reachable: no answer within {READY_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure of a dependency means "not ready", never a 500
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        reason = f"{name} not reachable: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return name, round((time.perf_counter() - started) * 1000, 1), reason


@router.get(
    "/readyz",
    summary="Readiness: the database and Stream answer",
    response_model=None,
    responses={200: {"model": ReadyEnvelope}} | error_responses(503),
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the database (SELECT 1) and Stream (an authenticated ping) both answer, else 503 with why."""

    async def database() -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    results = await asyncio.gather(_probe("database", database), _probe("stream", runtime.stream.ping))
    reasons = [reason for _, _, reason in results if reason]
    for name, _, reason in results:
        READY.labels(name).set(0 if reason else 1)
    if reasons:
        log.warning("health.not_ready", reasons=reasons)
        return JSONResponse(error_body("; ".join(reasons), "not_ready"), status_code=503)
    checks = {name: {"status": "ok", "ms": ms} for name, ms, _ in results}
    return JSONResponse({"success": True, "data": {"status": "ready", "checks": checks}})


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

"""GET /_debug/process: this process's id and database counters; served only with ONECREW_DEBUG_ENDPOINTS=true.

`make bench` reads it before and after each scenario (SQL statements and round trips per request), and the
`serve --workers` test tells the processes apart by their pid. GET /_debug/floor is the bench's floor: a bare route
of the same app (its middleware, router and error handling) on the same server, no authentication and no work, so
each scenario's CPU per request can be compared with the least any request costs on this stack in the same run.
Neither is in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from onecrew_chat.api.deps import RuntimeDep

router = APIRouter(include_in_schema=False)


@router.get("/_debug/process")
async def process_counters(runtime: RuntimeDep) -> dict[str, Any]:
    """`{pid, statements, transactions, commits, rollbacks, pool_checkouts, round_trips}`."""
    counters = runtime.db_counters
    assert counters is not None, "the app attaches the counters whenever it serves this route"
    return {"success": True, "data": counters.snapshot()}


@router.get("/_debug/floor")
async def floor() -> JSONResponse:
    """`{success: true, data: {}}`, answered the way the service's routes answer (JSONResponse)."""
    return JSONResponse({"success": True, "data": {}})

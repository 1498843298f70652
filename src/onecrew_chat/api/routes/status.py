"""GET /api/internal/status: the operator's one screen (the report of `onecrew-chat status`), service token only."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from onecrew_chat.api.deps import RuntimeDep, ServiceCaller
from onecrew_chat.observability.status import Status, gather_status

router = APIRouter(prefix="/api/internal", tags=["internal"])


class StatusEnvelope(BaseModel):
    """`{success: true, data: <status>}`."""

    success: bool = True
    data: Status


@router.get(
    "/status",
    summary="Service status: database, migrations, Stream, outbox, reconcile, workers",
    response_model=StatusEnvelope,
)
async def service_status(runtime: RuntimeDep, _caller: ServiceCaller) -> StatusEnvelope:
    """200 with the report whatever it says (`data.ok` false and `data.problems` in words when something needs
    attention); asks the database and Stream (one GetApp call), each within 3 s."""
    return StatusEnvelope(data=await gather_status(runtime))

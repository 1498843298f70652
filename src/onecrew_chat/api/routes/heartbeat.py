"""POST /api/chat/heartbeat: the app says the user is in the foreground (every 30 s)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import update

from onecrew_chat.api.deps import CurrentUserId, SessionDep
from onecrew_chat.api.openapi import error_responses
from onecrew_chat.api.presenters import iso
from onecrew_chat.api.schemas import HeartbeatEnvelope
from onecrew_chat.db import utcnow
from onecrew_chat.models import User

router = APIRouter(tags=["presence"])


@router.post(
    "/api/chat/heartbeat",
    summary="Record that the user is online",
    response_model=None,
    responses={200: {"model": HeartbeatEnvelope}, **error_responses(401)},
)
async def heartbeat(session: SessionDep, user_id: CurrentUserId) -> dict[str, Any]:
    """Stores user.last_seen_at (one UPDATE; a user the directory does not know yet is answered all the same)."""
    now = utcnow()
    # updated_at is kept as it is: it tracks directory changes, not presence.
    await session.execute(update(User).where(User.id == user_id).values(last_seen_at=now, updated_at=User.updated_at))
    return {"success": True, "data": {"last_seen_at": iso(now)}}

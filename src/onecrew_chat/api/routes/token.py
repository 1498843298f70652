"""POST /api/chat/token (and GET): a Stream user token for the acting identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from onecrew_chat.api.deps import CurrentUserId, RuntimeDep, SessionDep
from onecrew_chat.tokens import TokenRequest, issue_token

router = APIRouter(tags=["token"])


@router.api_route("/api/chat/token", methods=["GET", "POST"], summary="Stream token for the user or one of their companies")
async def stream_token(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    user_id: CurrentUserId,
    x_company_id: Annotated[str | None, Header()] = None,
) -> dict:
    """profile_type / company_id from the query, a JSON body or X-Company-Id; 400, 401 or 403 otherwise."""
    token_request = TokenRequest.from_parts(dict(request.query_params), await request.body(), x_company_id)
    return {"success": True, "data": await issue_token(session, runtime, user_id, token_request)}

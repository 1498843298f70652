"""POST /api/chat/token (and GET): a Stream user token for the acting identity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from onecrew_chat.accounts.tokens import TokenRequest, issue_token
from onecrew_chat.api.deps import CurrentUserId, RuntimeDep
from onecrew_chat.api.openapi import COMPANY_ID_SCHEMA, CompanyIdQuery, ProfileTypeQuery, error_responses, json_body
from onecrew_chat.api.presenters import ok, token_json
from onecrew_chat.api.schemas import TokenBody, TokenEnvelope

router = APIRouter(prefix="/api/chat/token", tags=["token"])

XCompanyId = Annotated[
    str | None,
    WithJsonSchema(COMPANY_ID_SCHEMA),
    Header(description="The same as company_id (which wins), for older clients"),
]
_DOC: dict[str, Any] = {
    "summary": "Stream token for the user or one of their companies",
    "response_model": None,
    "responses": {200: {"model": TokenEnvelope}, **error_responses(400, 401, 403, 413)},
}


async def token(
    request: Request,
    runtime: RuntimeDep,
    user_id: CurrentUserId,
    profile_type: ProfileTypeQuery = None,
    company_id: CompanyIdQuery = None,
    x_company_id: XCompanyId = None,
) -> JSONResponse:
    """profile_type / company_id from the query, a JSON body or X-Company-Id; 400, 401 or 403 otherwise.

    The query string first, then a JSON body (which may be empty), then X-Company-Id.
    """
    given = {
        name: value for name, value in (("profile_type", profile_type), ("company_id", company_id)) if value is not None
    }
    token_request = TokenRequest.from_parts(given, await request.body(), x_company_id)
    issued = await issue_token(runtime, user_id, token_request)
    # JSON types already (strings and None): answered as is, without FastAPI's jsonable_encoder walk.
    return JSONResponse(ok(token_json(issued)))


# One handler for both methods: GET is for clients that send no body.
router.add_api_route(
    "", token, methods=["POST"], name="post_token", openapi_extra=json_body(TokenBody, required=False), **_DOC
)
router.add_api_route(
    "", token, methods=["GET"], name="get_token", description="The same as POST, for clients that send no body.", **_DOC
)

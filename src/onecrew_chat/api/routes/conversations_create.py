"""POST /api/chat/conversations: create (or find) a conversation whose Stream channel holds every participant."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from onecrew_chat.api.deps import CurrentUserId, RuntimeDep
from onecrew_chat.api.errors import describe_validation_errors
from onecrew_chat.conversations import idempotency
from onecrew_chat.conversations.service import create_conversation
from onecrew_chat.errors import BadRequest, Unprocessable
from onecrew_chat.identity import Identity
from onecrew_chat.schemas import ConversationEnvelope, CreateConversationRequest, ErrorEnvelope

router = APIRouter(tags=["conversations"])

_ERRORS = {status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 409, 422, 502)}


def inline_definitions(schema: dict) -> dict:
    """A pydantic JSON schema with its `$defs` references inlined (OpenAPI cannot resolve `#/$defs/...`)."""
    definitions = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(definitions[ref.rsplit("/", 1)[1]]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(schema)


_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_definitions(CreateConversationRequest.model_json_schema())}},
    }
}


async def read_request(request: Request) -> CreateConversationRequest:
    """The JSON body as a CreateConversationRequest; 400 for empty or non-JSON bodies, 422 with words otherwise."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest(
            "Request body is empty; send a JSON object with conversation_type and participant_ids", code="invalid_json"
        )
    try:
        payload = json.loads(raw)
    except ValueError:
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise Unprocessable("Request body must be a JSON object with conversation_type and participant_ids")
    try:
        return CreateConversationRequest.model_validate(payload)
    except ValidationError as exc:
        _status, code, message = describe_validation_errors(list(exc.errors()))
        raise Unprocessable(message, code=code) from None


@router.post(
    "/api/chat/conversations",
    summary="Create a conversation (idempotent per pair and per Idempotency-Key)",
    response_model=ConversationEnvelope,
    responses=_ERRORS,
    openapi_extra=_BODY,
)
async def create(
    request: Request,
    runtime: RuntimeDep,
    user_id: CurrentUserId,
    idempotency_key: Annotated[str | None, Header(description="Replays the stored answer for 24 h")] = None,
) -> JSONResponse:
    """Create or find the conversation; its Stream channel holds every participant (or chat.status is provisioning)."""
    body = await read_request(request)
    if idempotency_key is None:
        data = await create_conversation(runtime, user_id, body)
        return JSONResponse({"success": True, "data": data})
    answer = await idempotency.run_once(
        runtime,
        caller=Identity.user(user_id).stream_id,
        key=idempotency.parse_key(idempotency_key),
        print_=idempotency.fingerprint(body.fingerprint_source()),
        work=lambda: create_conversation(runtime, user_id, body),
    )
    headers = {idempotency.REPLAY_HEADER: "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)

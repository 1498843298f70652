"""POST /api/chat/conversations: create (or find) a conversation whose Stream channel holds every participant."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError, WithJsonSchema

from onecrew_chat.api.deps import CurrentUserId, RuntimeDep
from onecrew_chat.api.errors import describe_validation_errors
from onecrew_chat.api.idempotent import keep, replay, run_keyed
from onecrew_chat.api.lean import LeanRoute, served_by, user_of
from onecrew_chat.api.openapi import error_responses, json_body
from onecrew_chat.api.presenters import conversation_json, ok
from onecrew_chat.api.schemas import ConversationEnvelope
from onecrew_chat.conversations import idempotency
from onecrew_chat.conversations.create import create_conversation
from onecrew_chat.conversations.idempotency import Answer
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.errors import BadRequest, ProvisioningTimeout, Unprocessable
from onecrew_chat.identity import ChatStatus, Identity
from onecrew_chat.runtime import Runtime

router = APIRouter(tags=["conversations"], route_class=LeanRoute)

IdempotencyKey = Annotated[
    str | None,
    WithJsonSchema(
        {"type": "string", "pattern": "^[!-~]{1,255}$", "examples": ["0b9f6c1e-5d2a-4f8e-9c3b-7a1d2e4f6a8b"]}
    ),
    Header(description="1 to 255 visible ASCII characters (a uuid is a good choice); replays the answer for 24 h"),
]


async def read_request(request: Request) -> CreateConversationRequest:
    """The JSON body as a CreateConversationRequest; 400 for empty or non-JSON bodies, 422 with words otherwise."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest(
            "Request body is empty; send a JSON object with conversation_type and participant_ids", code="invalid_json"
        )
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deep
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise Unprocessable("Request body must be a JSON object with conversation_type and participant_ids")
    try:
        return CreateConversationRequest.model_validate(payload)
    except ValidationError as exc:
        _status, code, message = describe_validation_errors(list(exc.errors()))
        raise Unprocessable(message, code=code) from None


async def _create_lean(request: Request) -> JSONResponse:
    """The create served by api.lean: the declared endpoint's caller and Idempotency-Key, read directly."""
    runtime, user_id = user_of(request)
    return await _create(request, runtime, user_id, request.headers.get("idempotency-key"))


@router.post(
    "/api/chat/conversations",
    summary="Create a conversation (idempotent per pair and per Idempotency-Key)",
    response_model=ConversationEnvelope,
    responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 502),
    openapi_extra=json_body(CreateConversationRequest),
)
@served_by(_create_lean)
async def post_conversation(
    request: Request,
    runtime: RuntimeDep,
    user_id: CurrentUserId,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create or find the conversation; its Stream channel holds every participant when this answers 200.

    Past the deadline the answer is 408 `provisioning_timeout` (see ProvisioningTimeout): the app retries it. An unkeyed
    group is the exception (a retry would make another group): 200 with `chat.status: "provisioning"`.
    """
    return await _create(request, runtime, user_id, idempotency_key)


async def _create(request: Request, runtime: Runtime, user_id: str, idempotency_key: str | None) -> JSONResponse:
    body = await read_request(request)
    if idempotency_key is None:
        created = await create_conversation(runtime, user_id, body)
        if created.still_provisioning and created.retry_finds_it:
            raise ProvisioningTimeout(created.conversation.channel_id)
        return JSONResponse(ok(conversation_json(created.conversation, created.directory)))
    ran = await run_keyed(
        runtime,
        caller=Identity.user(user_id).stream_id,
        key=idempotency.parse_key(idempotency_key),
        print_=idempotency.fingerprint(body.fingerprint_source()),
        work=lambda claim: create_conversation(runtime, user_id, body, bind=claim.bind, resume_id=claim.resume_id),
    )
    if isinstance(ran, Answer):
        stored = ran.body.get("data") if ran.status == 200 else None
        if isinstance(stored, dict) and (stored.get("chat") or {}).get("status") == ChatStatus.PROVISIONING:
            raise ProvisioningTimeout(str(stored.get("id")))  # a still-provisioning answer is never replayed
        return replay(ran)
    if ran.result.still_provisioning:
        # Not an answer to keep: the retry with the same key must run again and find the conversation ready (a key
        # bound to the conversation it made resumes that conversation).
        await idempotency.release(runtime, ran.claim)
        raise ProvisioningTimeout(ran.result.conversation.channel_id)
    return await keep(runtime, ran.claim, ok(conversation_json(ran.result.conversation, ran.result.directory)))

"""Reading conversations: the list, the unread count, one conversation by id, and prepare (self-healing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.accounts.access import acting_identity_for_profile, may_act_as, requested_identity
from onecrew_chat.api.deps import CurrentUserId, RuntimeDep, SessionDep
from onecrew_chat.api.lean import LeanRoute, served_by, user_of
from onecrew_chat.api.openapi import REQUIRED, CompanyIdQuery, ProfileTypeQuery, empty_or, error_responses
from onecrew_chat.api.presenters import LargeJSONResponse, conversation_json, ok, page_json, prepared_json, unread_json
from onecrew_chat.api.schemas import (
    ConversationEnvelope,
    ConversationPageEnvelope,
    PrepareEnvelope,
    UnreadCountEnvelope,
)
from onecrew_chat.conversations.heal import open_conversation, prepare
from onecrew_chat.conversations.listing import MAX_LIMIT, MAX_PAGE, MAX_SEARCH, PageRequest, list_conversations
from onecrew_chat.conversations.unread import UnreadCount, unread_cache, unread_count
from onecrew_chat.db import reads_only
from onecrew_chat.identity import CHANNEL_ID_PATTERN, Kind
from onecrew_chat.runtime import Runtime

router = APIRouter(prefix="/api/chat/conversations", tags=["conversations"], route_class=LeanRoute)

# Read as text and checked by PageRequest, whose 400s say what is wrong; WithJsonSchema documents what it accepts
# (an empty value means the default, as if the parameter were absent).
PageParam = Annotated[
    str | None,
    WithJsonSchema(empty_or({"type": "integer", "minimum": 1, "maximum": MAX_PAGE})),
    Query(description=f"1 to {MAX_PAGE:,}; default 1"),
]
LimitParam = Annotated[
    str | None,
    WithJsonSchema(empty_or({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})),
    Query(description=f"1 to {MAX_LIMIT}; default 20"),
]
SearchParam = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "maxLength": MAX_SEARCH}),
    Query(description="Case-insensitive substring of the conversation's or another participant's name"),
]
ConversationId = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": CHANNEL_ID_PATTERN.pattern}),
    Path(description="The Stream channel id (any scheme the app has used; a bare uuid finds onecrew_<uuid>)"),
]


async def _list_lean(request: Request) -> JSONResponse:
    """GET the list served by api.lean: the declared endpoint's parameters, read directly."""
    runtime, user_id = user_of(request)
    query = request.query_params
    async with reads_only(runtime.sessionmaker) as session:  # reads only: no BEGIN, no COMMIT
        return await _list_answer(
            session,
            user_id,
            (query.get("page"), query.get("limit"), query.get("search")),
            query.get("profile_type"),
            query.get("company_id"),
        )


@router.get(
    "",
    summary="List the acting profile's conversations, newest activity first",
    response_model=None,
    responses={200: {"model": ConversationPageEnvelope}, **error_responses(400, 401, 403)},
)
@served_by(_list_lean)
async def get_conversations(
    session: SessionDep,
    user_id: CurrentUserId,
    page: PageParam = None,
    limit: LimitParam = None,
    profile_type: ProfileTypeQuery = None,
    company_id: CompanyIdQuery = None,
    search: SearchParam = None,
) -> JSONResponse:
    """`{success, data: {data: [...], pagination: {page, limit, total, totalPages}}}`; 400 on bad parameters."""
    return await _list_answer(session, user_id, (page, limit, search), profile_type, company_id)


async def _list_answer(
    session: AsyncSession,
    user_id: str,
    paging: tuple[str | None, str | None, str | None],
    profile_type: str | None,
    company_id: str | None,
) -> JSONResponse:
    request = PageRequest.parse(*paging)
    identity = await acting_identity_for_profile(session, user_id, profile_type, company_id, required=False)
    page = await list_conversations(session, identity, request)
    # Already JSON types: answered as is, without FastAPI's jsonable_encoder walk (a third of a 100-row page's time).
    return LargeJSONResponse(ok(page_json(page)))


async def _unread_lean(request: Request) -> JSONResponse:
    """GET /unread-count served by api.lean (the app polls it): the declared endpoint's parameters, read directly."""
    runtime, user_id = user_of(request)
    query = request.query_params
    return await _unread_answer(runtime, user_id, query.get("profile_type"), query.get("company_id"))


# Declared before /{conversation_id}, or "unread-count" would be taken for a conversation id.
@router.get(
    "/unread-count",
    summary="How many conversations have a message the profile has not read",
    response_model=None,
    responses={200: {"model": UnreadCountEnvelope}, **error_responses(400, 401, 403)},
)
@served_by(_unread_lean)
async def get_unread_count(
    runtime: RuntimeDep,
    user_id: CurrentUserId,
    profile_type: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "enum": ["user", "company"], REQUIRED: True}),
        Query(description="Whose unread count: the user's or the company `company_id`'s"),
    ] = None,
    company_id: CompanyIdQuery = None,
) -> JSONResponse:
    """`{unread_count, profile_type, profile_id, cached}`; 400 for a missing or bad profile_type or company_id."""
    return await _unread_answer(runtime, user_id, profile_type, company_id)


async def _unread_answer(
    runtime: Runtime, user_id: str, profile_type: str | None, company_id: str | None
) -> JSONResponse:
    identity = requested_identity(user_id, profile_type, company_id, required=True)
    cache = unread_cache(runtime)
    cached = cache.get(identity.stream_id) if identity.kind is Kind.USER else None
    if cached is not None:  # the caller's own cached count: no transaction at all
        result = UnreadCount(cached, cached=True)
    else:
        async with reads_only(runtime.sessionmaker) as session:  # two reads: no BEGIN, no COMMIT
            await may_act_as(session, user_id, identity)
            result = await unread_count(session, cache, identity)
    # JSON types already: answered as is, without FastAPI's jsonable_encoder walk (the app polls this).
    return JSONResponse(ok(unread_json(result, identity)))


@router.get(
    "/{conversation_id}",
    summary="One conversation by its channel id (any scheme the app has used)",
    response_model=None,
    responses={200: {"model": ConversationEnvelope}, **error_responses(400, 401, 404)},
)
async def get_conversation(
    runtime: RuntimeDep, user_id: CurrentUserId, conversation_id: ConversationId
) -> dict[str, Any]:
    """The conversation when the caller or one of their companies takes part (else 404); finishes provisioning."""
    opened = await open_conversation(runtime, user_id, conversation_id)
    return ok(conversation_json(opened.conversation, opened.directory))


@router.post(
    "/{conversation_id}/prepare",
    summary="Make sure the channel and every member exist in Stream",
    response_model=None,
    responses={200: {"model": PrepareEnvelope}, **error_responses(400, 401, 404, 502, 503)},
)
async def prepare_conversation(
    runtime: RuntimeDep, user_id: CurrentUserId, conversation_id: ConversationId
) -> dict[str, Any]:
    """`{id, chat_status, members}`; no Stream call when our records say everything is in place."""
    return ok(prepared_json(await prepare(runtime, user_id, conversation_id)))

"""The JSON the API answers with, rendered from what the services return; `id` and `conversation_id` are the Stream
channel id, times are ISO 8601 in UTC with milliseconds.

The services return typed results (a ConversationView and its Directory, a ConversationPage, an IssuedToken, ...)
and know nothing of these shapes; docs/reference/app-contract.md is the contract the app's answers keep, and
api/schemas.py and api/internal_schemas.py document them. Large answers are encoded by orjson (`LargeJSONResponse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import JSONResponse

from onecrew_chat.accounts.directory import Party
from onecrew_chat.accounts.tokens import IssuedToken
from onecrew_chat.conversations.listing import (
    C_CHANNEL_ID,
    C_CHANNEL_TYPE,
    C_CREATED,
    C_LAST_AT,
    C_NAME,
    C_PREVIEW,
    C_STATUS,
    C_TYPE,
    C_UPDATED,
    CO_ID,
    CO_LOGO,
    CO_NAME,
    CO_SUBCATEGORY,
    P_ENTITY,
    P_ID,
    P_JOINED,
    P_READ,
    P_TYPE,
    U_CATEGORY,
    U_ID,
    U_IMAGE,
    U_NAME,
    ConversationPage,
)
from onecrew_chat.conversations.on_behalf import ServerMessage
from onecrew_chat.conversations.unread import UnreadCount
from onecrew_chat.identity import STREAM_PREFIX, Identity, Kind, cid, normalize_uuid
from onecrew_chat.models import CompanyMember, Conversation
from onecrew_chat.sync.participants import Directory, DirectoryCompany, DirectoryUser
from onecrew_chat.sync.read_model import ConversationView, ParticipantView, ordered_participants

_USER = Kind.USER.value


class LargeJSONResponse(JSONResponse):
    """A JSONResponse encoded by orjson, for answers large enough for the encoder to matter.

    A list page (20 conversations with their participants, about 24 KB) took 0.38 ms to encode with the standard
    library's `json` (what JSONResponse uses) and 0.014 ms with orjson; a small answer such as the unread count
    takes 0.004 ms either way, so only large answers use it. For what it is given (strings, integers, booleans,
    None, lists and objects with string keys) orjson writes the same bytes as JSONResponse: compact separators,
    UTF-8 rather than \\u escapes.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(data: Any) -> dict[str, Any]:
    """The envelope of every successful answer."""
    return {"success": True, "data": data}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as JavaScript's Date prints it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_json(user: DirectoryUser) -> dict[str, Any]:
    """A user as the app reads it: id, name, image_url, category."""
    return {"id": user.id, "name": user.name, "image_url": user.image_url, "category": user.category}


def company_json(company: DirectoryCompany) -> dict[str, Any]:
    """A company as the app reads it: id, name, logo_url, subcategory."""
    return {"id": company.id, "name": company.name, "logo_url": company.logo_url, "subcategory": company.subcategory}


def participant_json(participant: ParticipantView, channel_id: str, directory: Directory) -> dict[str, Any]:
    """One participant with its user or company (null when the directory does not know it)."""
    body: dict[str, Any] = {
        "id": participant.id,
        "conversation_id": channel_id,
        "participant_type": participant.participant_type,
        "participant_id": participant.participant_id,
        "joined_at": iso(participant.joined_at),
        "last_read_at": iso(participant.last_read_at),
    }
    if participant.participant_type == _USER:
        user = directory.users.get(participant.participant_id)
        body["user"] = user_json(user) if user else None
    else:
        company = directory.companies.get(participant.participant_id)
        body["company"] = company_json(company) if company else None
    return body


def conversation_json(conversation: ConversationView, directory: Directory) -> dict[str, Any]:
    """A conversation as `data` of the create's and the GET's answers (participants with their directory rows)."""
    participants = ordered_participants(conversation)
    channel_id = conversation.channel_id
    return {
        "id": channel_id,
        "conversation_id": channel_id,
        "conversation_type": conversation.conversation_type,
        "name": conversation.name,
        "created_at": iso(conversation.created_at),
        "updated_at": iso(conversation.updated_at),
        "last_message_at": iso(conversation.last_message_at),
        "last_message_preview": conversation.last_message_preview,
        "participants": [participant_json(p, channel_id, directory) for p in participants],
        "chat": {
            "channel_type": conversation.channel_type,
            "channel_id": channel_id,
            "cid": cid(channel_id, conversation.channel_type),
            "status": conversation.chat_status,
            "members": [Identity(Kind(p.participant_type), p.participant_id).stream_id for p in participants],
        },
    }


def prepared_json(conversation: Conversation) -> dict[str, Any]:
    """`{id, chat_status, members}`: what prepare made sure of (members creator first, as the channel lists them)."""
    return {
        "id": conversation.channel_id,
        "chat_status": conversation.chat_status,
        "members": [
            Identity(Kind(p.participant_type), p.participant_id).stream_id for p in ordered_participants(conversation)
        ],
    }


def page_json(page: ConversationPage) -> dict[str, Any]:
    """`{data: [...], pagination: {page, limit, total, totalPages}}`: each conversation as `conversation_json`
    renders it (the same JSON), straight from the list's rows."""
    return {
        "data": [_listed_json(conversation, members) for conversation, members in page.conversations],
        "pagination": {
            "page": page.page,
            "limit": page.limit,
            "total": page.total,
            "totalPages": page.total_pages,
        },
    }


def _listed_json(conversation: Sequence[Any], members: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """`conversation_json` of a listed conversation: its row, then its participants' rows in the app's order."""
    channel_id = conversation[C_CHANNEL_ID]
    channel_type = conversation[C_CHANNEL_TYPE]
    return {
        "id": channel_id,
        "conversation_id": channel_id,
        "conversation_type": conversation[C_TYPE],
        "name": conversation[C_NAME],
        "created_at": iso(conversation[C_CREATED]),
        "updated_at": iso(conversation[C_UPDATED]),
        "last_message_at": iso(conversation[C_LAST_AT]),
        "last_message_preview": conversation[C_PREVIEW],
        "participants": [_listed_participant(row, channel_id) for row in members],
        "chat": {
            "channel_type": channel_type,
            "channel_id": channel_id,
            "cid": cid(channel_id, channel_type),
            "status": conversation[C_STATUS],
            "members": [f"{STREAM_PREFIX}{Kind(r[P_TYPE]).value}_{normalize_uuid(r[P_ENTITY])}" for r in members],
        },
    }


def _listed_participant(row: Sequence[Any], channel_id: str) -> dict[str, Any]:
    """`participant_json` of a listed participant's row."""
    body: dict[str, Any] = {
        "id": row[P_ID],
        "conversation_id": channel_id,
        "participant_type": row[P_TYPE],
        "participant_id": row[P_ENTITY],
        "joined_at": iso(row[P_JOINED]),
        "last_read_at": iso(row[P_READ]),
    }
    if row[P_TYPE] == _USER:
        known = row[U_ID] is not None
        body["user"] = (
            {"id": row[U_ID], "name": row[U_NAME], "image_url": row[U_IMAGE], "category": row[U_CATEGORY]}
            if known
            else None
        )
    else:
        known = row[CO_ID] is not None
        body["company"] = (
            {"id": row[CO_ID], "name": row[CO_NAME], "logo_url": row[CO_LOGO], "subcategory": row[CO_SUBCATEGORY]}
            if known
            else None
        )
    return body


def unread_json(count: UnreadCount, identity: Identity) -> dict[str, Any]:
    """`{unread_count, profile_type, profile_id, cached}` for the profile."""
    return {
        "unread_count": count.count,
        "profile_type": identity.kind.value,
        "profile_id": identity.entity_id,
        "cached": count.cached,
    }


def token_json(issued: IssuedToken) -> dict[str, Any]:
    """`{token, user_id, api_key, profile_type, company_id}`: user_id is the Stream id the app connects as."""
    identity = issued.identity
    return {
        "token": issued.token,
        "user_id": identity.stream_id,
        "api_key": issued.api_key,
        "profile_type": identity.kind.value,
        "company_id": identity.entity_id if identity.kind is Kind.COMPANY else None,
    }


def server_message_json(message: ServerMessage) -> dict[str, Any]:
    """`{id, conversation_id, sender, status}` of a server-side message (status `sent` or `queued`)."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender": message.sender,
        "status": message.delivery.value,
    }


def party_json(party: Party, row: Any) -> dict[str, Any]:
    """A user or company as the internal API answers it (its times encoded by FastAPI)."""
    return {
        "id": row.id,
        **{field: getattr(row, field) for field in party.fields},
        "kind": party.kind.value,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def member_json(member: CompanyMember) -> dict[str, Any]:
    """A membership as the internal API answers it (its times encoded by FastAPI)."""
    return {
        "company_id": member.company_id,
        "user_id": member.user_id,
        "role": member.role,
        "invitation_status": member.invitation_status,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }

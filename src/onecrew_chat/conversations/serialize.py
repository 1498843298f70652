"""The conversation JSON the OneCrew app reads; `id` and `conversation_id` are the Stream channel id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from onecrew_chat.identity import STREAM_PREFIX, Identity, Kind, cid, normalize_uuid
from onecrew_chat.sync.participants import Directory, DirectoryCompany, DirectoryUser
from onecrew_chat.sync.read_model import ConversationView, ParticipantView


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
    if participant.participant_type == Kind.USER.value:
        user = directory.users.get(participant.participant_id)
        body["user"] = user_json(user) if user else None
    else:
        company = directory.companies.get(participant.participant_id)
        body["company"] = company_json(company) if company else None
    return body


def ordered_participants(conversation: ConversationView) -> list[ParticipantView]:
    """Participants with the creator first, then by join time and id (a stable order for the app)."""
    creator = (conversation.created_by_type, conversation.created_by_id)
    return sorted(
        conversation.participants,
        key=lambda p: (
            (p.participant_type, p.participant_id) != creator,
            p.joined_at,
            p.participant_type,
            p.participant_id,
        ),
    )


def serialize_conversation(conversation: ConversationView, directory: Directory) -> dict[str, Any]:
    """The conversation as `data` of the app's answers (participants must be loaded; see load_directory_for)."""
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


# Flat rows (conversations/listing.py): a conversation's columns in this order, its total, then one participant with
# its user's and its company's columns (None when the directory does not know it, or for the other kind).
(C_ID, C_CHANNEL_TYPE, C_CHANNEL_ID, C_TYPE, C_NAME, C_BY_TYPE, C_BY_ID, C_STATUS) = range(8)
(C_CREATED, C_UPDATED, C_LAST_AT, C_PREVIEW, TOTAL) = range(8, 13)
(P_ID, P_TYPE, P_ENTITY, P_JOINED, P_READ) = range(13, 18)
(U_ID, U_NAME, U_IMAGE, U_CATEGORY, CO_ID, CO_NAME, CO_LOGO, CO_SUBCATEGORY) = range(18, 26)
_USER = Kind.USER.value


def _flat_participant(row: Sequence[Any], channel_id: str) -> dict[str, Any]:
    """`participant_json` of a flat row."""
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


def flat_conversation(conversation: Sequence[Any], members: list[Sequence[Any]]) -> dict[str, Any]:
    """`serialize_conversation` of flat rows (the same JSON): the conversation's columns, one row per participant."""
    creator = (conversation[C_BY_TYPE], conversation[C_BY_ID])
    members.sort(key=lambda r: ((r[P_TYPE], r[P_ENTITY]) != creator, r[P_JOINED], r[P_TYPE], r[P_ENTITY]))
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
        "participants": [_flat_participant(row, channel_id) for row in members],
        "chat": {
            "channel_type": channel_type,
            "channel_id": channel_id,
            "cid": cid(channel_id, channel_type),
            "status": conversation[C_STATUS],
            "members": [f"{STREAM_PREFIX}{Kind(r[P_TYPE]).value}_{normalize_uuid(r[P_ENTITY])}" for r in members],
        },
    }

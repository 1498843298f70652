"""Finding a conversation by the id the app holds, and whom the caller acts as in it (or 404)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from onecrew_chat.accounts.access import managed_company_ids
from onecrew_chat.errors import BadRequest, NotFound
from onecrew_chat.identity import STREAM_PREFIX, Identity, Kind, is_valid_channel_id, normalize_uuid
from onecrew_chat.models import Conversation

NOT_FOUND = "Conversation not found"


@dataclass(frozen=True)
class VisibleConversation:
    """A conversation the caller may see, with the identity they act as in it."""

    conversation: Conversation
    acting: Identity


def candidate_channel_ids(conversation_id: str) -> list[str]:
    """The channel ids an app id may stand for: itself, and `onecrew_<uuid>` for the era-1 ids the app stripped."""
    candidates = [conversation_id]
    try:
        candidates.append(STREAM_PREFIX + normalize_uuid(conversation_id))
    except ValueError:
        pass
    return candidates


def check_conversation_id(conversation_id: str) -> None:
    """400 for anything that cannot be a channel id of any scheme."""
    if not is_valid_channel_id(conversation_id):
        raise BadRequest(
            "Invalid conversation id: use the channel id, 1 to 128 letters, digits, '_' or '-'",
            code="invalid_conversation_id",
        )


def acting_identity_in(conversation: Conversation, user_id: str, company_ids: list[str]) -> Identity | None:
    """The caller if they take part, else the first managed company that does, else None."""
    taking_part = {(p.participant_type, p.participant_id) for p in conversation.participants}
    if (Kind.USER.value, user_id) in taking_part:
        return Identity.user(user_id)
    for participant in conversation.participants:
        if participant.participant_type == Kind.COMPANY.value and participant.participant_id in company_ids:
            return Identity.company(participant.participant_id)
    return None


async def find_conversation(session: AsyncSession, conversation_id: str) -> Conversation:
    """The conversation (with its participants) an app id stands for, any scheme; 400 for a malformed id, 404 for none."""
    check_conversation_id(conversation_id)
    candidates = candidate_channel_ids(conversation_id)
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.channel_id.in_(candidates), Conversation.deleted_at.is_(None))
        .options(selectinload(Conversation.participants))
    )
    by_channel = {c.channel_id: c for c in rows}
    conversation = next((by_channel[c] for c in candidates if c in by_channel), None)
    if conversation is None:
        raise NotFound(NOT_FOUND, code="conversation_not_found")
    return conversation


async def find_visible_conversation(session: AsyncSession, user_id: str, conversation_id: str) -> VisibleConversation:
    """The conversation with this channel id that the caller or one of their companies takes part in; 404 otherwise."""
    conversation = await find_conversation(session, conversation_id)
    company_ids: list[str] = []
    if any(p.participant_type == Kind.COMPANY.value for p in conversation.participants):
        company_ids = await managed_company_ids(session, user_id)
    acting = acting_identity_in(conversation, user_id, company_ids)
    if acting is None:
        raise NotFound(NOT_FOUND, code="conversation_not_found")
    return VisibleConversation(conversation, acting)

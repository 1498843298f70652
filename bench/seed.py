"""Bulk rows for the benchmarks, written straight into the database (no HTTP, no Stream)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity, pair_channel_id, pair_key
from onecrew_chat.models import Company, CompanyMember, Conversation, ConversationParticipant, User


async def add_users(session, count: int, prefix: str = "Bench user") -> list[str]:
    """Insert `count` users and return their ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = utcnow()
    await session.execute(
        insert(User),
        [
            {
                "id": i,
                "name": f"{prefix} {n}",
                "image_url": None,
                "category": "crew",
                "created_at": now,
                "updated_at": now,
            }
            for n, i in enumerate(ids)
        ],
    )
    return ids


async def add_company(session, owner_id: str, name: str = "Bench Studio") -> str:
    """Insert a company with an accepted owner and return its id."""
    company_id = str(uuid.uuid4())
    now = utcnow()
    await session.execute(
        insert(Company),
        [
            {
                "id": company_id,
                "name": name,
                "logo_url": None,
                "subcategory": "studio",
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    await session.execute(
        insert(CompanyMember),
        [
            {
                "company_id": company_id,
                "user_id": owner_id,
                "role": "owner",
                "invitation_status": "accepted",
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    return company_id


async def add_conversations(session, owner_id: str, others: list[str], *, unread_every: int = 2) -> None:
    """Ready user_user conversations between `owner_id` and each of `others`; every `unread_every`-th is unread."""
    now = utcnow()
    conversations, participants = [], []
    me = Identity.user(owner_id)
    for n, other_id in enumerate(others):
        other = Identity.user(other_id)
        conversation_id = str(uuid.uuid4())
        last_message_at = now - timedelta(seconds=n)
        conversations.append(
            {
                "id": conversation_id,
                "channel_type": "messaging",
                "channel_id": pair_channel_id("user_user", me, other),
                "conversation_type": "user_user",
                "name": None,
                "pair_key": pair_key(me, other),
                "created_by_type": "user",
                "created_by_id": owner_id,
                "chat_status": "ready",
                "stream_verified_at": now,
                "last_message_at": last_message_at,
                "last_message_preview": f"message {n}",
                "created_at": now,
                "updated_at": now,
            }
        )
        read_at = last_message_at - timedelta(seconds=1) if n % unread_every == 0 else last_message_at
        for pid, read in ((owner_id, read_at), (other_id, last_message_at)):
            participants.append(
                {
                    "id": str(uuid.uuid4()),
                    "conversation_id": conversation_id,
                    "participant_type": "user",
                    "participant_id": pid,
                    "joined_at": now,
                    "last_read_at": read,
                    "created_at": now,
                }
            )
    for start in range(0, len(conversations), 1000):
        await session.execute(insert(Conversation), conversations[start : start + 1000])
    for start in range(0, len(participants), 1000):
        await session.execute(insert(ConversationParticipant), participants[start : start + 1000])

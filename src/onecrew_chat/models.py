"""The database schema in SQLAlchemy 2 style: the directory, conversations, the Stream mirror and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, FetchedValue, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from onecrew_chat.db import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_uuid() -> str:
    """A fresh lowercase uuid4 string (ids are stored as text on every database)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints the same everywhere."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Timestamped:
    """created_at / updated_at columns."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- the directory (kept current by the main OneCrew backend) ---------------------------------


class User(Timestamped, Base):
    """A OneCrew user."""

    __tablename__ = "user"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    category: Mapped[str | None] = mapped_column(String(32))
    last_seen_at: Mapped[datetime | None]


class Company(Timestamped, Base):
    """A OneCrew company (production house, agency, academy, ...)."""

    __tablename__ = "company"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    subcategory: Mapped[str | None] = mapped_column(String(64))


class CompanyMember(Timestamped, Base):
    """A user's membership of a company; only accepted owners and admins may act as the company."""

    __tablename__ = "company_member"

    company_id: Mapped[str] = mapped_column(ForeignKey("company.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    invitation_status: Mapped[str] = mapped_column(String(32))

    __table_args__ = (Index("ix_company_member_user_id", "user_id"),)


# --- conversations ----------------------------------------------------------------------------


class Conversation(Timestamped, Base):
    """One chat: a pair (user_user, user_company, company_company) or a group, backed by one Stream channel."""

    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    channel_type: Mapped[str] = mapped_column(String(64), default="messaging")
    channel_id: Mapped[str] = mapped_column(String(128), unique=True)
    conversation_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(255))
    # Sorted Stream ids of a pair; unique so that a pair has one conversation whatever the direction.
    pair_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_by_type: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[str] = mapped_column(String(36))
    # provisioning | ready | failed
    chat_status: Mapped[str] = mapped_column(String(16), default="provisioning")
    # Set once Stream was seen to hold every participant; adopted channels start without it.
    stream_verified_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    last_message_preview: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None]

    participants: Mapped[list[ConversationParticipant]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="ConversationParticipant.joined_at"
    )

    __table_args__ = (Index("ix_conversation_last_message_at", "last_message_at"),)


# A participant row is unread when its conversation has a message after the participant's read marker.
UNREAD_PREDICATE = "last_message_at IS NOT NULL AND (last_read_at IS NULL OR last_message_at > last_read_at)"


class ConversationParticipant(Base):
    """A user or company taking part in a conversation, with its read marker."""

    __tablename__ = "conversation_participant"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    participant_type: Mapped[str] = mapped_column(String(16))
    participant_id: Mapped[str] = mapped_column(String(36))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_read_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A copy of conversation.last_message_at, kept equal by database triggers (migration 0003) so that the
    # unread count is one index scan on this table; never written by the application.
    last_message_at: Mapped[datetime | None] = mapped_column(server_default=FetchedValue())

    conversation: Mapped[Conversation] = relationship(back_populates="participants")

    __table_args__ = (
        UniqueConstraint("conversation_id", "participant_type", "participant_id"),
        Index("ix_conversation_participant_profile", "participant_type", "participant_id"),
        Index(
            "ix_conversation_participant_unread",
            "participant_type",
            "participant_id",
            sqlite_where=text(UNREAD_PREDICATE),
            postgresql_where=text(UNREAD_PREDICATE),
        ),
    )


# --- the Stream mirror ------------------------------------------------------------------------


class StreamIdentity(Base):
    """What we know exists in Stream: one row per Stream user id we upserted, with its profile hash."""

    __tablename__ = "stream_identity"

    stream_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(36))
    profile_hash: Mapped[str] = mapped_column(String(64))
    placeholder: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- reliability: outbox, idempotency, webhooks, drift -----------------------------------------


class OutboxMessage(Timestamped, Base):
    """Work that must reach Stream; written in the same transaction as the change that needs it."""

    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A pending row with the same dedupe key is reused instead of adding another one.
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    # pending | done | dead
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_dedupe_key", "dedupe_key"),
    )


class IdempotencyKey(Base):
    """A stored answer for an Idempotency-Key, scoped by caller, kept for ONECREW_IDEMPOTENCY_TTL_S."""

    __tablename__ = "idempotency_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # running | done
    status: Mapped[str] = mapped_column(String(16), default="running")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("caller", "key"),)


class WebhookEvent(Base):
    """A Stream webhook already applied (deduplicated by X-Webhook-Id)."""

    __tablename__ = "webhook_event"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelDrift(Base):
    """A difference between our records and Stream, reported by a webhook, for the reconciler."""

    __tablename__ = "channel_drift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_type: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_channel_drift_open", "resolved_at"),)


# --- cut-over: adopting the old backend's Stream channels (sync/adoption) -------------------------


class AdoptionChannel(Base):
    """A Stream channel seen by `import channels`: what Stream showed, and what became of it (the run's ledger)."""

    __tablename__ = "adoption_channel"

    cid: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255))
    member_ids: Mapped[list[str]] = mapped_column(JSON)  # Stream user ids, as Stream listed them
    member_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime | None]  # the channel's, in Stream
    last_message_at: Mapped[datetime | None]
    preview: Mapped[str | None] = mapped_column(String(255))
    reads: Mapped[dict[str, Any]] = mapped_column(JSON)  # Stream user id -> ISO time of its last read
    damaged: Mapped[dict[str, Any]] = mapped_column(JSON)  # Stream user id -> what the old backend left wrong
    # pending | pair | group | duplicate | skipped
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    pair_key: Mapped[str | None] = mapped_column(String(255))
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    staged_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_adoption_channel_outcome", "outcome"), Index("ix_adoption_channel_pair_key", "pair_key"))


class AdoptionPosition(Base):
    """Where `import channels` is in Stream's channel list (created_at cursor), so an interrupted run resumes."""

    __tablename__ = "adoption_position"

    channel_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor_us: Mapped[int] = mapped_column(BigInteger, default=0)  # microseconds since the epoch
    seen_at_cursor: Mapped[int] = mapped_column(Integer, default=0)  # channels already read at exactly cursor_us
    pages: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

"""The database schema in SQLAlchemy 2 style: the directory, conversations, the Stream mirror and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from onecrew_chat.db import EnumString, UTCDateTime, utcnow
from onecrew_chat.identity import ChatStatus

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
    chat_status: Mapped[ChatStatus] = mapped_column(EnumString(ChatStatus, 16), default=ChatStatus.PROVISIONING)
    # Set once Stream was seen to hold every participant; adopted channels start without it.
    stream_verified_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    last_message_preview: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None]
    # A provisioning run's claim (sync.channels.claim): taken and released in short transactions, never held
    # across a Stream call by a database lock.
    provision_lease_token: Mapped[str | None] = mapped_column(String(32))
    provision_lease_until: Mapped[datetime | None]

    participants: Mapped[list[ConversationParticipant]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="ConversationParticipant.joined_at"
    )

    __table_args__ = (
        Index("ix_conversation_last_message_at", "last_message_at"),
        Index(
            "ix_conversation_deleted",
            "id",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
    )


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
    # COALESCE(conversation.last_message_at, conversation.created_at), kept by the same triggers (migration
    # 0012): the list's order, served per profile by ix_conversation_participant_activity; never written here.
    activity_at: Mapped[datetime | None] = mapped_column(server_default=FetchedValue())

    conversation: Mapped[Conversation] = relationship(back_populates="participants")

    __table_args__ = (
        UniqueConstraint("conversation_id", "participant_type", "participant_id"),
        Index("ix_conversation_participant_profile", "participant_type", "participant_id"),
        Index(
            "ix_conversation_participant_activity",
            "participant_type",
            "participant_id",
            "activity_at",
            "conversation_id",
        ),
        Index(
            "ix_conversation_participant_unread",
            "participant_type",
            "participant_id",
            sqlite_where=text(UNREAD_PREDICATE),
            postgresql_where=text(UNREAD_PREDICATE),
        ),
    )


class ProfileConversationCount(Base):
    """How many conversation_participant rows a profile has, kept by database triggers (migration 0012) on
    every insert and delete of a participant row; the list's `total` without counting the rows. Never written
    by the application."""

    __tablename__ = "profile_conversation_count"

    participant_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    participant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversations: Mapped[int] = mapped_column(Integer, server_default="0")


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
    # The directory row's updated_at of the profile Stream was sent (None: placeholder or external); a profile
    # older than the one recorded never replaces it.
    profile_version: Mapped[datetime | None]


# --- reliability: outbox, idempotency, webhooks, drift -----------------------------------------


PENDING_DEDUPE = "status = 'pending' AND dedupe_key IS NOT NULL"


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
    # The claim of the worker running the row (with locked_until); outcomes are recorded only under it.
    lease_token: Mapped[str | None] = mapped_column(String(36))
    # Bumped when new work is folded into the pending row; a run of an older version does not mark it done.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_dedupe_key", "dedupe_key"),
        Index("ix_outbox_message_done", "status", "updated_at"),
        # One pending row per (kind, dedupe_key): concurrent adds make one row (migration 0005).
        Index(
            "uq_outbox_message_pending_dedupe",
            "kind",
            "dedupe_key",
            unique=True,
            sqlite_where=text(PENDING_DEDUPE),
            postgresql_where=text(PENDING_DEDUPE),
        ),
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
    # The conversation a keyed create made, bound in the same commit: a retry after a crash replays it.
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("caller", "key"),)


class WebhookEvent(Base):
    """A Stream webhook already applied (deduplicated by X-Webhook-Id)."""

    __tablename__ = "webhook_event"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_webhook_event_received_at", "received_at"),)


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


class JobLease(Base):
    """A named lease one process holds for a while (the reconciler's run), taken and given back in short transactions."""

    __tablename__ = "job_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(32))
    until: Mapped[datetime | None]


# --- observability: what `onecrew-chat status` and /metrics read (migration 0015) ---------------


class ReconcileRun(Base):
    """One finished reconcile run: when it ended and the drift it found by kind (the newest row is shown)."""

    __tablename__ = "reconcile_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    drift: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_reconcile_run_finished_at", "finished_at"),)


class WorkerHeartbeat(Base):
    """A running worker process: written every ONECREW_WORKER_HEARTBEAT_S, deleted when it stops cleanly."""

    __tablename__ = "worker_heartbeat"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- cut-over: adopting the old backend's Stream channels (sync/cutover) --------------------------


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

    __table_args__ = (
        Index("ix_adoption_channel_outcome", "outcome"),
        Index("ix_adoption_channel_pair_key", "pair_key"),
    )


class AdoptionPosition(Base):
    """Where `import channels` is in Stream's channel list (created_at cursor), so an interrupted run resumes."""

    __tablename__ = "adoption_position"

    channel_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor_us: Mapped[int] = mapped_column(BigInteger, default=0)  # microseconds since the epoch
    seen_at_cursor: Mapped[int] = mapped_column(Integer, default=0)  # channels already read at exactly cursor_us
    pages: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CutoverState(Base):
    """The cut-over switch the operator sets (`cutover begin`) and clears (`cutover end`): one row per name.

    While it is on, a create for a pair the service does not know looks in Stream for the pair's old channel first.
    """

    __tablename__ = "cutover_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    began_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

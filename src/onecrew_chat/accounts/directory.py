"""The directory kept current by the main OneCrew backend: upserts and deletes of users, companies, members.

A PUT that creates a user or company, or changes its name or image, enqueues an `identity.sync` outbox row in
the same transaction (one pending row per identity; so does an unchanged one Stream holds only as a placeholder):
the worker mirrors it into Stream, 100 identities per call, before a conversation or token needs it, so a new pair
is usually one Stream call. The change reaches Stream even if Stream is down right now. A DELETE removes the row from the directory only: conversations and
their participant rows stay (old chats remain readable), the Stream user is left as it is, and the
deleted id can no longer be used to start a new conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.errors import NotFound
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Base, Company, CompanyMember, StreamIdentity, User
from onecrew_chat.sync.queue import enqueue_identity_sync, settle_profiles

log = get_logger(__name__)

Row = TypeVar("Row", bound=Base)


@dataclass(frozen=True)
class Upserted:
    """The stored row after a PUT, whether it was new, and whether a Stream sync was enqueued."""

    row: Any
    created: bool
    sync_enqueued: bool = False


def _insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """INSERT for the session's dialect (both SQLite and PostgreSQL know ON CONFLICT DO NOTHING)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


async def _lock_or_insert(
    session: AsyncSession, model: type[Row], key: dict[str, str], values: dict[str, Any]
) -> tuple[Row, bool]:
    """The row with this primary key, locked for update, or a new one; safe when two PUTs race to create it."""
    ident = tuple(key.values()) if len(key) > 1 else next(iter(key.values()))
    row = await session.get(model, ident, with_for_update=True)
    if row is not None:
        return row, False
    # No savepoint: pysqlite commits the outer transaction when a savepoint that opened it is released.
    statement = _insert(session, model).values(**key, **values).on_conflict_do_nothing(index_elements=list(key))
    created = cast(CursorResult[Any], await session.execute(statement)).rowcount == 1
    row = await session.get(model, ident, with_for_update=True, populate_existing=True)
    if row is None:  # inserted and deleted again by a concurrent request before our read
        raise NotFound(f"{model.__tablename__} was deleted while being updated", code="not_found")
    return row, created


@dataclass(frozen=True)
class Party:
    """How a user or a company is kept: its table, its Stream kind, its fields and which of them Stream shows."""

    model: type[User] | type[Company]
    kind: Kind
    fields: tuple[str, ...]  # name, image, detail: the PUT body, in answer order
    image_field: str
    member_column: Any  # CompanyMember's column that points at this party

    @property
    def id_field(self) -> str:
        """`user_id` or `company_id`, as logs and answers name it."""
        return f"{self.kind.value}_id"


USER = Party(User, Kind.USER, ("name", "image_url", "category"), "image_url", CompanyMember.user_id)
COMPANY = Party(Company, Kind.COMPANY, ("name", "logo_url", "subcategory"), "logo_url", CompanyMember.company_id)
# Stable event names per kind (never built with f-strings in the log call).
_UPSERTED = {Kind.USER: "directory.user_upserted", Kind.COMPANY: "directory.company_upserted"}
_DELETED = {Kind.USER: "directory.user_deleted", Kind.COMPANY: "directory.company_deleted"}


def identity_sync_needed(placeholder: bool | None, *, changed: bool, mirror_new: bool = True) -> bool:
    """Whether an upsert must queue `identity.sync`. `placeholder` is the mirror row's flag (None: no mirror row);
    `changed`: the directory row is new or its name or image changed.

    Stream holds the identity: when the profile changed, or Stream holds only a placeholder. Stream does not hold
    it yet: when it changed (a new row, or a profile never sent), unless `mirror_new` is off (the bulk import
    command leaves those to `onecrew-chat sync identities`).
    """
    if placeholder is None:
        return mirror_new and changed
    return changed or placeholder


async def _enqueue_identity_sync(session: AsyncSession, identity: Identity, *, changed: bool) -> bool:
    """Queue the identity's mirror into Stream when the directory row is new, its profile changed, or Stream holds
    only a placeholder."""
    mirror = await session.get(StreamIdentity, identity.stream_id)
    placeholder = None if mirror is None else mirror.placeholder
    if not identity_sync_needed(placeholder, changed=changed):
        return False
    await enqueue_identity_sync(session, identity.stream_id)
    log.info("directory.identity_sync_enqueued", stream_id=identity.stream_id, placeholder=placeholder)
    return True


async def upsert_party(session: AsyncSession, party: Party, entity_id: str, values: dict[str, str | None]) -> Upserted:
    """Create or update a user or company; enqueue its Stream mirror when it is new or its name or image changed."""
    row, created = await _lock_or_insert(session, party.model, {"id": entity_id}, values)
    shown = ("name", party.image_field)
    changed = created or any(getattr(row, field) != values[field] for field in shown)
    if not created:
        for field, value in values.items():
            setattr(row, field, value)
    await session.flush()
    identity = Identity(party.kind, entity_id)
    enqueued = await _enqueue_identity_sync(session, identity, changed=changed)
    if changed and not created:  # a sender may be on its way to Stream with the old profile: send it again later
        await settle_profiles(session, [identity.stream_id])
    log.info(_UPSERTED[party.kind], **{party.id_field: entity_id}, created=created, sync_enqueued=enqueued)
    return Upserted(row, created, enqueued)


async def upsert_member(
    session: AsyncSession, company_id: str, user_id: str, *, role: str, invitation_status: str
) -> Upserted:
    """Create or update a membership; 404 when the company or the user is not in the directory."""
    if await session.get(Company, company_id) is None:
        raise NotFound(f"Company not found: {company_id}", code="company_not_found")
    if await session.get(User, user_id) is None:
        raise NotFound(f"User not found: {user_id}", code="user_not_found")
    values = {"role": role, "invitation_status": invitation_status}
    try:
        member, created = await _lock_or_insert(
            session, CompanyMember, {"company_id": company_id, "user_id": user_id}, values
        )
    except IntegrityError as exc:
        # The user or company was deleted by a concurrent request after our existence check.
        raise NotFound(f"Company or user not found: {company_id}, {user_id}", code="not_found") from exc
    if not created:
        member.role, member.invitation_status = role, invitation_status
    await session.flush()
    log.info(
        "directory.member_upserted",
        company_id=company_id,
        user_id=user_id,
        role=role,
        invitation_status=invitation_status,
        created=created,
    )
    return Upserted(member, created)


async def delete_party(session: AsyncSession, party: Party, entity_id: str) -> bool:
    """Remove a user or company and its memberships; conversations and the Stream user stay. False if absent."""
    await session.execute(delete(CompanyMember).where(party.member_column == entity_id))
    removed = await session.execute(delete(party.model).where(party.model.id == entity_id))
    deleted = cast(CursorResult[Any], removed).rowcount > 0
    log.info(_DELETED[party.kind], **{party.id_field: entity_id}, existed=deleted)
    return deleted


async def delete_member(session: AsyncSession, company_id: str, user_id: str) -> bool:
    """Remove one membership (the user can no longer act as the company). False if absent."""
    result = await session.execute(
        delete(CompanyMember).where(CompanyMember.company_id == company_id, CompanyMember.user_id == user_id)
    )
    deleted = cast(CursorResult[Any], result).rowcount > 0
    log.info("directory.member_deleted", company_id=company_id, user_id=user_id, existed=deleted)
    return deleted

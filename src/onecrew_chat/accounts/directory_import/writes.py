"""Bulk writes of a batch: read the stored rows it touches (locked), decide each row's outcome, upsert in one go.

Users and companies follow the PUT's Stream rule (a new row, or a changed name or image, queues the identity's
`identity.sync`; the import command passes `mirror_new=False` and queues only identities Stream already holds);
memberships naming an unknown company or user are rejected with the PUT's words.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.accounts import directory
from onecrew_chat.accounts.directory_import.kinds import Outcome, Status, rejected
from onecrew_chat.accounts.directory_schemas import CompanyRecord, MemberRecord, UserRecord
from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Company, CompanyMember, StreamIdentity, User
from onecrew_chat.sync.queue import enqueue_identity_syncs, settle_profiles

PARTY_KEY = ("id",)
MEMBER_KEY = ("company_id", "user_id")
MEMBER_FIELDS = ("role", "invitation_status")


def _writers_lock(table: Table) -> int:
    """The advisory lock id bulk writers of `table` take turns on (stable across processes and versions)."""
    return zlib.crc32(f"onecrew_chat.directory_bulk.{table.name}".encode())


async def stored_rows(
    session: AsyncSession, table: Table, key: Sequence[str], fields: Sequence[str], keys: Sequence[tuple[str, ...]]
) -> dict[tuple[str, ...], dict[str, Any]]:
    """The stored `fields` of the rows with these keys, locked for update in key order (PostgreSQL), by key.

    On PostgreSQL, bulk writers of one table first take turns (a transaction-scoped advisory lock): the rows a batch
    locks here are the ones it writes, in key order, then its new rows in key order. Without turns, a batch whose
    read came before another batch committed new rows would lock those rows last while the other locked them in
    key order with the rest: each would hold a row the other waits for (a deadlock, one of them failed).
    """
    if not keys:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_writers_lock(table))))
    key_columns = [table.c[name] for name in key]
    if len(key_columns) == 1:
        where = key_columns[0].in_([k[0] for k in keys])
    else:
        where = tuple_(*key_columns).in_(list(keys))
    query = select(*key_columns, *(table.c[name] for name in fields)).where(where).order_by(*key_columns)
    # Locked in key order, so two imports (or an import and a PUT) wait for each other instead of deadlocking.
    rows = (await session.execute(query.with_for_update())).all()
    width = len(key)
    return {tuple(row[:width]): dict(zip(fields, row[width:], strict=True)) for row in rows}


async def upsert_rows(
    session: AsyncSession, table: Table, key: Sequence[str], fields: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE the given rows in one executemany (SQLite and PostgreSQL alike).

    Each row has the key, the fields, `created_at` and `updated_at`; an existing row keeps its `created_at`.
    Rows are written in key order: two batches naming the same new rows in different orders would otherwise each
    insert a row the other then waits for (a deadlock, which PostgreSQL ends by failing one of them).
    """
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    updated = {name: statement.excluded[name] for name in (*fields, "updated_at")}
    in_key_order = sorted(rows, key=lambda row: tuple(row[name] for name in key))
    await session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=updated), in_key_order)


async def _mirror_flags(session: AsyncSession, stream_ids: Sequence[str]) -> dict[str, bool]:
    """The mirror's `placeholder` flag of each of these Stream ids that Stream knows (absent: not mirrored)."""
    query = select(StreamIdentity.stream_id, StreamIdentity.placeholder).where(StreamIdentity.stream_id.in_(stream_ids))
    return {stream_id: bool(placeholder) for stream_id, placeholder in (await session.execute(query)).all()}


async def upsert_parties(
    session: AsyncSession,
    party: directory.Party,
    records: Sequence[UserRecord | CompanyRecord],
    *,
    mirror_new: bool = True,
) -> list[Outcome]:
    """Write users or companies with distinct ids; one outcome per record, in order.

    A record equal to the stored row writes nothing. A new row, or a changed name or image, queues the identity's
    `identity.sync` as the PUT queues it (one statement for the batch); so does Stream holding only a placeholder.
    `mirror_new=False` queues only identities Stream already holds (the import command: `sync identities` mirrors
    the rest in bulk).
    """
    table: Table = party.model.__table__  # type: ignore[assignment]  # typed FromClause; a mapped class has a Table
    fields = party.fields
    shown = ("name", party.image_field)
    ids = [record.id for record in records]
    stored = await stored_rows(session, table, PARTY_KEY, fields, [(entity_id,) for entity_id in ids])
    stream_ids = [Identity(party.kind, entity_id).stream_id for entity_id in ids]
    mirrored = await _mirror_flags(session, stream_ids)
    now = utcnow()
    writes: list[dict[str, Any]] = []
    plans: list[tuple[Status, bool]] = []
    for entity_id, record in zip(ids, records, strict=True):
        values = record.values()
        old = stored.get((entity_id,))
        if old is None:
            status: Status = "created"
            changed = True
        elif old == values:
            status, changed = "unchanged", False
        else:
            status, changed = "updated", any(old[field] != values[field] for field in shown)
        if status != "unchanged":
            writes.append({"id": entity_id, **values, "created_at": now, "updated_at": now})
        plans.append((status, changed))
    await upsert_rows(session, table, PARTY_KEY, fields, writes)
    outcomes = []
    queued: list[str] = []
    settle: list[str] = []
    for stream_id, (status, changed) in zip(stream_ids, plans, strict=True):
        sync = directory.identity_sync_needed(mirrored.get(stream_id), changed=changed, mirror_new=mirror_new)
        if sync:
            queued.append(stream_id)
        if status == "updated" and changed and (mirror_new or stream_id in mirrored):
            settle.append(stream_id)  # as the PUT does: sent once more after any sender of the old profile is done
        outcomes.append(Outcome(status, sync_queued=sync))
    await enqueue_identity_syncs(session, queued)
    await settle_profiles(session, settle)
    return outcomes


async def _known(session: AsyncSession, model: type[User] | type[Company], ids: set[str]) -> set[str]:
    return set((await session.scalars(select(model.id).where(model.id.in_(ids)))).all())


async def upsert_members(session: AsyncSession, records: Sequence[MemberRecord]) -> list[Outcome]:
    """Write memberships with distinct (company_id, user_id); one outcome per record, in order."""
    table: Table = CompanyMember.__table__  # type: ignore[assignment]  # typed FromClause; a mapped class has a Table
    companies = await _known(session, Company, {record.company_id for record in records})
    users = await _known(session, User, {record.user_id for record in records})
    keys = [(record.company_id, record.user_id) for record in records]
    stored = await stored_rows(session, table, MEMBER_KEY, MEMBER_FIELDS, keys)
    now = utcnow()
    writes: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for key, record in zip(keys, records, strict=True):
        if record.company_id not in companies:
            outcomes.append(rejected(f"Company not found: {record.company_id}"))
            continue
        if record.user_id not in users:
            outcomes.append(rejected(f"User not found: {record.user_id}"))
            continue
        values = record.values()
        old = stored.get(key)
        status: Status = "created" if old is None else "unchanged" if old == values else "updated"
        if status != "unchanged":
            writes.append({"company_id": key[0], "user_id": key[1], **values, "created_at": now, "updated_at": now})
        outcomes.append(Outcome(status))
    await upsert_rows(session, table, MEMBER_KEY, MEMBER_FIELDS, writes)
    return outcomes

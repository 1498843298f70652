"""Recording what Stream accepted in the identity mirror, and the one-call read, send and record of a set of identities.

`record` keeps the newest profile: a row whose version is older than the one recorded loses, and rows that may
hold an outdated or unknown profile in Stream are marked stale and resent through an `identity.sync`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Company, StreamIdentity, User
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import DEFAULT_DEADLINE_S, STALE_HASH, IdentityBatch, read_identities
from onecrew_chat.sync.participants import Profile
from onecrew_chat.sync.queue import enqueue_identity_sync

log = get_logger(__name__)


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def _directory_versions(session: AsyncSession, stream_ids: Iterable[str]) -> dict[str, datetime]:
    """The directory's current updated_at of these identities, read FOR SHARE so a PUT in flight is waited for.

    With the share lock, a PUT either commits before this read (its newer version is seen here) or after this
    transaction (it then sees the mirror row written here and queues its own sync): no change falls between.
    """
    identities = [Identity.parse(stream_id) for stream_id in stream_ids]
    versions: dict[str, datetime] = {}
    for model, kind in ((User, Kind.USER), (Company, Kind.COMPANY)):
        ids = sorted(i.entity_id for i in identities if i.kind is kind)
        if ids:
            rows = await session.execute(
                select(model.id, model.updated_at).where(model.id.in_(ids)).with_for_update(read=True)
            )
            versions.update((Identity(kind, entity_id).stream_id, updated_at) for entity_id, updated_at in rows)
    return versions


async def record(session: AsyncSession, batch: IdentityBatch) -> None:
    """Write the rows Stream accepted, unless the mirror already records a newer profile; resend what is outdated.

    A row whose version is older than the one recorded loses. Stream may have applied our older profile after the
    newer one, and the directory may have changed while we called Stream: either way the row is marked stale and
    an `identity.sync` queued, which sends the newest profile again. The same holds for ids sent in a call whose
    outcome is unknown (it timed out, or its answer was lost): Stream may hold what it sent, so they are resent.
    """
    rows = sorted(batch.accepted.values(), key=lambda row: row["stream_id"])  # key order: writers never deadlock
    outdated: set[str] = set()
    versioned = {row["stream_id"]: row["profile_version"] for row in rows if row["profile_version"] is not None}
    if rows:
        current = await _directory_versions(session, versioned) if versioned else {}
        table = StreamIdentity.__table__
        statement = _insert(session)(StreamIdentity).values(rows)
        excluded = statement.excluded
        newer_or_equal = or_(
            table.c.profile_version.is_(None),
            (excluded.profile_version.is_not(None)) & (table.c.profile_version <= excluded.profile_version),
        )
        columns = [name for name in rows[0] if name != "stream_id"]
        written = await session.scalars(
            statement.on_conflict_do_update(
                index_elements=["stream_id"], set_={name: excluded[name] for name in columns}, where=newer_or_equal
            ).returning(table.c.stream_id)
        )
        # Not written: the mirror records a newer profile than the one we sent.
        outdated = set(versioned) - set(written)
        outdated |= {stream_id for stream_id, version in current.items() if version > versioned[stream_id]}
    uncertain: set[str] = set()
    if batch.uncertain:  # only rows that claim to know what Stream holds; without one, the next use sends anyway
        uncertain = set(
            await session.scalars(
                select(StreamIdentity.stream_id).where(StreamIdentity.stream_id.in_(sorted(batch.uncertain)))
            )
        )
    stale = sorted(outdated | uncertain)
    if not stale:
        return
    await session.execute(
        update(StreamIdentity)
        .where(StreamIdentity.stream_id.in_(stale))
        .values(profile_hash=STALE_HASH)
        .execution_options(synchronize_session=False)
    )
    for stream_id in stale:
        await enqueue_identity_sync(session, stream_id)
    if outdated:
        log.info("identities.outdated_profile_sent", stream_ids=sorted(outdated)[:10], count=len(outdated))
    if uncertain:
        log.info("identities.outcome_unknown", stream_ids=sorted(uncertain)[:10], count=len(uncertain))


async def save(sessionmaker: async_sessionmaker[AsyncSession], batch: IdentityBatch) -> None:
    """`record` in a short transaction of its own, when the batch has anything to write (after its Stream calls)."""
    if batch.accepted or batch.uncertain:
        async with unit_of_work(sessionmaker) as session:
            await record(session, batch)


async def sync_identities(
    sessionmaker: async_sessionmaker[AsyncSession],
    stream: StreamGateway,
    identities: Iterable[Identity],
    *,
    placeholder_ok: bool = False,
    deadline: Deadline | None = None,
    profiles: Mapping[Identity, Profile] | None = None,
    force: bool = False,
) -> int:
    """Read, send and record in three steps (no transaction open while Stream is called); returns how many were sent.

    Rows of batches Stream accepted are recorded even when a later call fails. `profiles` saves the query; `force`
    sends the directory's profile even when the mirror says Stream holds it.
    """
    wanted = list(identities)
    async with unit_of_work(sessionmaker) as session:
        batch = await read_identities(session, wanted, profiles=profiles)
    try:
        return await batch.send(
            stream,
            wanted,
            placeholder_ok=placeholder_ok,
            deadline=deadline or Deadline(DEFAULT_DEADLINE_S),
            force=force,
        )
    finally:
        await save(sessionmaker, batch)

"""The Stream identity mirror: upsert only identities missing from Stream or with a changed profile."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import utcnow
from onecrew_chat.errors import NotFound
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import IDENTITIES_UPSERTED
from onecrew_chat.models import StreamIdentity
from onecrew_chat.stream.client import StreamGateway, StreamUser
from onecrew_chat.stream.errors import StreamBatchError, StreamError, StreamRequestError, StreamUsersMissing
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.participants import Profile, load_profiles

log = get_logger(__name__)

BATCH = 100  # Stream's limit for upserts, partial updates and user queries
DEFAULT_DEADLINE_S = 3.0
EXTERNAL_HASH = "external"  # the Stream user existed before we knew its profile; never overwritten
_PENDING = "onecrew.mirror_pending"  # session.info key: rows waiting for the end of a deferred_writes block


class IdentityNotFound(NotFound):
    """An identity that neither the directory nor the mirror knows, with placeholders not allowed."""

    def __init__(self, identity: Identity):
        super().__init__(f"Other participant not found: {identity.entity_id}", code="participant_not_found")
        self.identity = identity


def stream_user(profile: Profile) -> StreamUser:
    """The StreamUser for a profile (the adapter always adds role "user")."""
    return StreamUser(id=profile.stream_id, name=profile.name, image=profile.image, custom=profile.custom)


def partial_update(profile: Profile) -> tuple[str, dict, list[str]]:
    """(id, set, unset) that turns the Stream user into this profile without replacing anything else."""
    fields: dict = {"name": profile.name, **profile.custom}
    unset: list[str] = []
    if profile.image:
        fields["image"] = profile.image
    else:
        unset.append("image")
    if not profile.placeholder:
        unset.append("onecrew_placeholder")
    return profile.stream_id, fields, unset


def chunks(items: list, size: int = BATCH) -> Iterable[list]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def load_mirror(session: AsyncSession, stream_ids: Iterable[str]) -> dict[str, StreamIdentity]:
    """Mirror rows for these Stream ids (one query)."""
    ids = sorted(set(stream_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(StreamIdentity).where(StreamIdentity.stream_id.in_(ids)).execution_options(populate_existing=True)
    )
    found = {row.stream_id: row for row in rows}
    pending = session.info.get(_PENDING) or {}
    found.update({i: StreamIdentity(**pending[i]) for i in ids if i in pending})  # accepted, not written yet
    return found


async def complete_mirror(
    session: AsyncSession, identities: Iterable[Identity], mirror: Mapping[str, StreamIdentity | None] | None
) -> dict[str, StreamIdentity | None]:
    """The rows the caller already read (None for "no row") plus the identities' other rows, read in one query."""
    known = dict(mirror or {})
    known.update(await load_mirror(session, [i.stream_id for i in identities if i.stream_id not in known]))
    return known


def is_fresh(profile: Profile | None, row: StreamIdentity | None) -> bool:
    """True when Stream holds this profile already (or holds a user we must not overwrite)."""
    if row is None:
        return False
    return profile is None or row.profile_hash == profile.profile_hash


async def upsert_rows(session: AsyncSession, model, rows: list[dict], *, key: tuple[str, ...]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL), rows in key order so concurrent writers never deadlock."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[name] for name in key))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(model).values(rows)
    columns = [name for name in rows[0] if name not in key]
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in columns}
    )
    await session.execute(statement)


@contextlib.asynccontextmanager
async def deferred_writes(session: AsyncSession) -> AsyncIterator[None]:
    """Hold back mirror rows while the block calls Stream and write them when it ends, so no lock waits on Stream.

    SQLite has one writer for the whole database and PostgreSQL keeps a written row locked until commit: a mirror
    row written before a slow channel call would make every other writer wait for Stream. Rows of batches Stream
    accepted are still written when a later Stream call fails (the caller may commit them with the failure).
    """
    if _PENDING in session.info:  # an outer block writes them
        yield
        return
    session.info[_PENDING] = {}
    failed = False
    try:
        yield
    except BaseException as exc:
        # After anything but a Stream error the transaction rolls back (or cannot run SQL): nothing to write.
        failed = not isinstance(exc, StreamError)
        raise
    finally:
        rows = list(session.info.pop(_PENDING).values())
        if not failed:
            await upsert_rows(session, StreamIdentity, rows, key=("stream_id",))


async def record(session: AsyncSession, profiles: Iterable[Profile], *, external: bool = False) -> None:
    """Write mirror rows after Stream accepted these profiles (insert or update, safe under concurrency)."""
    now = utcnow()
    rows = [
        {
            "stream_id": p.stream_id,
            "kind": p.identity.kind.value,
            "entity_id": p.identity.entity_id,
            "profile_hash": EXTERNAL_HASH if external else p.profile_hash,
            "placeholder": p.placeholder,
            "synced_at": now,
        }
        for p in profiles
    ]
    pending = session.info.get(_PENDING)
    if pending is not None:
        pending.update((row["stream_id"], row) for row in rows)
        return
    await upsert_rows(session, StreamIdentity, rows, key=("stream_id",))


async def upsert_profiles(session: AsyncSession, stream: StreamGateway, profiles: list[Profile], deadline: Deadline) -> None:
    """Full upserts, 100 per call, each batch recorded in the mirror once Stream accepted it."""
    for batch in chunks(profiles):
        users = [stream_user(p) for p in batch]
        try:
            await deadline.run(lambda users=users: stream.upsert_users(users), name="UpdateUsers")
        except StreamBatchError as exc:
            log.error("identities.upsert_failed", bad_id=exc.bad_id, batch=len(batch), error=str(exc))
            raise
        await record(session, batch)
        for profile in batch:
            IDENTITIES_UPSERTED.labels(kind=profile.identity.kind.value).inc()


def lost_ids(error: StreamRequestError, batch: list[Profile]) -> set[str] | None:
    """The ids of a partial update that Stream says do not exist (None when the error is about something else)."""
    if isinstance(error, StreamUsersMissing):
        return set(error.missing_ids) & {p.stream_id for p in batch} or {p.stream_id for p in batch}
    if error.status == 404 or "exist" in error.message.lower():
        named = {p.stream_id for p in batch if p.stream_id in error.message}
        return named or {p.stream_id for p in batch}
    return None


async def update_profiles(session: AsyncSession, stream: StreamGateway, profiles: list[Profile], deadline: Deadline) -> None:
    """Partial updates for identities Stream already has; ones Stream lost are upserted instead."""
    for batch in chunks(profiles):
        while batch:
            updates = [partial_update(p) for p in batch]
            try:
                await deadline.run(lambda updates=updates: stream.partial_update_users(updates), name="UpdateUsersPartial")
            except StreamRequestError as exc:
                lost = lost_ids(exc, batch)
                if lost is None:
                    log.error("identities.update_failed", bad_id=getattr(exc, "bad_id", None), batch=len(batch), error=str(exc))
                    raise
                log.warning("identities.lost_in_stream", stream_ids=sorted(lost)[:10], count=len(lost))
                await upsert_profiles(session, stream, [p for p in batch if p.stream_id in lost], deadline)
                batch = [p for p in batch if p.stream_id not in lost]
                continue
            await record(session, batch)
            break


async def add_placeholders(session: AsyncSession, stream: StreamGateway, identities: list[Identity], deadline: Deadline) -> list[Profile]:
    """Minimal Stream users for unknown ids, never overwriting a Stream user that already exists."""
    profiles = [Profile.placeholder_for(i) for i in identities]
    absent: list[Profile] = []
    for batch in chunks(profiles):
        ids = [p.stream_id for p in batch]
        existing = await deadline.run(lambda ids=ids: stream.query_user_ids(ids), name="QueryUsers")
        await record(session, [p for p in batch if p.stream_id in existing], external=True)
        absent += [p for p in batch if p.stream_id not in existing]
    await upsert_profiles(session, stream, absent, deadline)
    log.info("identities.placeholders", count=len(profiles), created=len(absent))
    return absent


async def ensure_identities(
    session: AsyncSession,
    stream: StreamGateway,
    identities: Iterable[Identity],
    *,
    placeholder_ok: bool = False,
    profiles: Mapping[Identity, Profile] | None = None,
    mirror: Mapping[str, StreamIdentity | None] | None = None,
    deadline: Deadline | None = None,
) -> int:
    """Make Stream hold every identity's current profile; returns how many were sent (0 when the mirror is fresh).

    `profiles` and `mirror` (rows by Stream id, None for "no row") save the queries when the caller has them.
    """
    started = time.perf_counter()
    wanted = sorted(set(identities))
    if profiles is None:
        profiles = await load_profiles(session, wanted)
    elif any(identity not in profiles for identity in wanted):
        profiles = {**await load_profiles(session, [i for i in wanted if i not in profiles]), **profiles}
    mirror = await complete_mirror(session, wanted, mirror)
    missing, stale, unknown = [], [], []
    for identity in wanted:
        profile, row = profiles.get(identity), mirror.get(identity.stream_id)
        if is_fresh(profile, row):
            continue
        if profile is None:
            if not placeholder_ok:
                raise IdentityNotFound(identity)
            unknown.append(identity)
        elif row is None:
            missing.append(profile)
        else:
            stale.append(profile)
    if not (missing or stale or unknown):
        return 0
    deadline = deadline or Deadline(DEFAULT_DEADLINE_S)
    await upsert_profiles(session, stream, missing, deadline)
    await update_profiles(session, stream, stale, deadline)
    created = await add_placeholders(session, stream, unknown, deadline) if unknown else []
    sent = len(missing) + len(stale) + len(created)
    log.info(
        "identities.upserted",
        upserted=len(missing),
        updated=len(stale),
        placeholders=len(created),
        stream_ids=[p.stream_id for p in (missing + stale)[:10]],
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return sent


async def repair_identities(
    session: AsyncSession, stream: StreamGateway, stream_ids: list[str], *, deadline: Deadline | None = None
) -> None:
    """Re-upsert exactly the ids Stream said don't exist (whatever the mirror believed), then record them.

    The upserts run within `deadline` (the run's, so that a repair cannot outlast it) like every other call.
    """
    identities = []
    for stream_id in dict.fromkeys(stream_ids):
        try:
            identities.append(Identity.parse(stream_id))
        except ValueError:
            log.error("identities.repair_unknown_id", stream_id=stream_id[:128])
            raise StreamRequestError(
                f"Stream says user {stream_id[:128]!r} does not exist, and it is not an id this service makes",
                operation="RepairUsers",
            ) from None
    profiles = await load_profiles(session, identities)
    mirror = await load_mirror(session, (i.stream_id for i in identities))
    to_send = []
    for identity in identities:
        profile = profiles.get(identity)
        if profile is None:
            row = mirror.get(identity.stream_id)
            if row is None or not row.placeholder:
                raise IdentityNotFound(identity)
            profile = Profile.placeholder_for(identity)  # Stream says it is gone, so nothing is overwritten
        to_send.append(profile)
    deadline = deadline or Deadline(DEFAULT_DEADLINE_S)
    for batch in chunks(to_send):
        users = [stream_user(p) for p in batch]
        await deadline.run(lambda users=users: stream.upsert_users(users), name="UpdateUsers")
        await record(session, batch)
    log.info("identities.repaired", stream_ids=[p.stream_id for p in to_send][:10], count=len(to_send))

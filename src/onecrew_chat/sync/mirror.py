"""The Stream identity mirror: send only identities missing from Stream or with a changed profile.

A run reads what it needs in one short transaction (`read_identities`), calls Stream with no transaction open
(`IdentityBatch.send`, `.repair`), and writes what Stream accepted in another short transaction (`record`). The
mirror keeps the version (the directory row's updated_at) of the profile each row stands for: an older profile
never replaces a newer one, and a run that finds it sent an older profile than the mirror already records marks
the row stale and queues an `identity.sync`, because Stream may have kept the older one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import utcnow
from onecrew_chat.errors import UnknownIdentity
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import IDENTITIES_UPSERTED
from onecrew_chat.models import StreamIdentity
from onecrew_chat.stream.client import StreamGateway, StreamUser
from onecrew_chat.stream.errors import StreamBatchError, StreamRequestError, StreamTransientError, StreamUsersMissing
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.participants import Profile, load_directory

log = get_logger(__name__)

BATCH = 100  # Stream's limit for upserts, partial updates and user queries
DEFAULT_DEADLINE_S = 3.0
EXTERNAL_HASH = "external"  # the Stream user existed before we knew its profile; never overwritten
STALE_HASH = "stale"  # Stream may hold an older profile than the directory's: the next sync resends it


def stream_user(profile: Profile) -> StreamUser:
    """The StreamUser for a profile (the adapter always adds role "user")."""
    return StreamUser(id=profile.stream_id, name=profile.name, image=profile.image, custom=profile.custom)


def partial_update(profile: Profile) -> tuple[str, dict[str, Any], list[str]]:
    """(id, set, unset) that turns the Stream user into this profile without replacing anything else."""
    fields: dict[str, Any] = {"name": profile.name, **profile.custom}
    unset: list[str] = []
    if profile.image:
        fields["image"] = profile.image
    else:
        unset.append("image")
    if not profile.placeholder:
        unset.append("onecrew_placeholder")
    return profile.stream_id, fields, unset


def chunks(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_fresh(profile: Profile | None, row: StreamIdentity | None) -> bool:
    """True when Stream holds this profile already (or holds a user we must not overwrite)."""
    if row is None:
        return False
    return profile is None or row.profile_hash == profile.profile_hash


async def load_mirror(session: AsyncSession, stream_ids: Iterable[str]) -> dict[str, StreamIdentity]:
    """Mirror rows for these Stream ids (one query)."""
    ids = sorted(set(stream_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(StreamIdentity).where(StreamIdentity.stream_id.in_(ids)).execution_options(populate_existing=True)
    )
    return {row.stream_id: row for row in rows}


async def complete_mirror(
    session: AsyncSession, identities: Iterable[Identity], mirror: Mapping[str, StreamIdentity | None] | None
) -> dict[str, StreamIdentity | None]:
    """The rows the caller already read (None for "no row") plus the identities' other rows, read in one query."""
    known: dict[str, StreamIdentity | None] = dict(mirror or {})
    known.update(await load_mirror(session, [i.stream_id for i in identities if i.stream_id not in known]))
    return known


def _row(profile: Profile, *, external: bool = False) -> dict[str, Any]:
    return {
        "stream_id": profile.stream_id,
        "kind": profile.identity.kind.value,
        "entity_id": profile.identity.entity_id,
        "profile_hash": EXTERNAL_HASH if external else profile.profile_hash,
        "placeholder": profile.placeholder,
        "profile_version": None if external else profile.version,
        "synced_at": utcnow(),
    }


@dataclass
class IdentityBatch:
    """Profiles and mirror rows read for a run, and the rows Stream accepted during it (written by `record`)."""

    profiles: dict[Identity, Profile]
    mirror: dict[str, StreamIdentity | None]
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Ids sent in calls that failed without an answer we can trust (a timeout, a 5xx, the deadline): Stream may have
    # applied them anyway, so what it holds is unknown. `record` marks them stale and queues their sync.
    attempted: set[str] = field(default_factory=set)

    @property
    def uncertain(self) -> set[str]:
        """Ids sent in a call whose outcome is unknown (attempted, never accepted)."""
        return self.attempted - set(self.accepted)

    def profile(self, identity: Identity) -> Profile | None:
        """The directory's profile of an identity this batch read (None: not in the directory)."""
        return self.profiles.get(identity)

    def needs(
        self, identities: Iterable[Identity], *, placeholder_ok: bool, force: bool = False
    ) -> tuple[list[Profile], list[Profile], list[Identity]]:
        """(missing, stale, unknown): what Stream must be sent; UnknownIdentity for an unknown id without placeholders.

        `force` sends a directory profile even when the mirror says Stream holds it (the mirror may be wrong after a
        process died mid-call: its write can land after a newer one was recorded)."""
        missing: list[Profile] = []
        stale: list[Profile] = []
        unknown: list[Identity] = []
        for identity in sorted(set(identities)):
            profile, row = self.profiles.get(identity), self.mirror.get(identity.stream_id)
            if identity.stream_id in self.accepted or (is_fresh(profile, row) and not (force and profile)):
                continue
            if profile is None:
                if not placeholder_ok:
                    raise UnknownIdentity([identity.entity_id])
                unknown.append(identity)
            elif row is None:
                missing.append(profile)
            else:
                stale.append(profile)
        return missing, stale, unknown

    def settled(self, identities: Iterable[Identity]) -> bool:
        """Every identity's mirror row is fresh: nothing to send."""
        return all(is_fresh(self.profiles.get(i), self.mirror.get(i.stream_id)) for i in identities)

    async def _call(
        self, deadline: Deadline, call: Callable[[], Awaitable[None]], batch: list[Profile], *, name: str
    ) -> None:
        """One call sending these profiles; when it fails without a trustworthy answer (timeout, 5xx, deadline),
        Stream may have applied it anyway, so its ids become uncertain (see `record`). A refusal applied nothing."""
        try:
            await deadline.run(call, name=name)
        except StreamTransientError:
            self.attempted.update(p.stream_id for p in batch)
            raise

    def _accept(self, profiles: Iterable[Profile], *, external: bool = False) -> None:
        for profile in profiles:
            self.accepted[profile.stream_id] = _row(profile, external=external)

    async def send(
        self,
        stream: StreamGateway,
        identities: Iterable[Identity],
        *,
        placeholder_ok: bool,
        deadline: Deadline,
        force: bool = False,
    ) -> int:
        """Make Stream hold every identity's current profile; returns how many were sent (0 when the mirror is fresh)."""
        started = time.perf_counter()
        missing, stale, unknown = self.needs(identities, placeholder_ok=placeholder_ok, force=force)
        if not (missing or stale or unknown):
            return 0
        await self.upsert(stream, missing, deadline)
        await self.update(stream, stale, deadline)
        created = await self.add_placeholders(stream, unknown, deadline) if unknown else []
        log.info(
            "identities.upserted",
            upserted=len(missing),
            updated=len(stale),
            placeholders=len(created),
            stream_ids=[p.stream_id for p in (missing + stale)[:10]],
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return len(missing) + len(stale) + len(created)

    async def upsert(self, stream: StreamGateway, profiles: list[Profile], deadline: Deadline) -> None:
        """Full upserts, 100 per call (several calls at once), each batch accepted once Stream took it."""

        async def one(batch: list[Profile]) -> None:
            users = [stream_user(p) for p in batch]
            try:
                await self._call(deadline, partial(stream.upsert_users, users), batch, name="UpdateUsers")
            except StreamBatchError as exc:
                log.error("identities.upsert_failed", bad_id=exc.bad_id, batch=len(batch), error=str(exc))
                raise
            self._accept(batch)
            for profile in batch:
                IDENTITIES_UPSERTED.labels(kind=profile.identity.kind.value).inc()

        await deadline.each([partial(one, batch) for batch in chunks(profiles)])

    async def update(self, stream: StreamGateway, profiles: list[Profile], deadline: Deadline) -> None:
        """Partial updates for identities Stream already has; ones Stream lost are upserted instead."""
        for batch in chunks(profiles):
            while batch:
                updates = [partial_update(p) for p in batch]
                try:
                    await self._call(
                        deadline, partial(stream.partial_update_users, updates), batch, name="UpdateUsersPartial"
                    )
                except StreamRequestError as exc:
                    lost = lost_ids(exc, batch)
                    if lost is None:
                        log.error(
                            "identities.update_failed",
                            bad_id=getattr(exc, "bad_id", None),
                            batch=len(batch),
                            error=str(exc),
                        )
                        raise
                    log.warning("identities.lost_in_stream", stream_ids=sorted(lost)[:10], count=len(lost))
                    await self.upsert(stream, [p for p in batch if p.stream_id in lost], deadline)
                    batch = [p for p in batch if p.stream_id not in lost]
                    continue
                self._accept(batch)
                break

    async def add_placeholders(
        self, stream: StreamGateway, identities: list[Identity], deadline: Deadline
    ) -> list[Profile]:
        """Minimal Stream users for unknown ids, never overwriting a Stream user that already exists."""
        profiles = [Profile.placeholder_for(i) for i in identities]
        absent: list[Profile] = []
        for batch in chunks(profiles):
            ids = [p.stream_id for p in batch]
            existing = await deadline.run(partial(stream.query_user_ids, ids), name="QueryUsers")
            self._accept([p for p in batch if p.stream_id in existing], external=True)
            absent += [p for p in batch if p.stream_id not in existing]
        await self.upsert(stream, absent, deadline)
        log.info("identities.placeholders", count=len(profiles), created=len(absent))
        return absent

    async def repair(self, stream: StreamGateway, stream_ids: list[str], deadline: Deadline) -> None:
        """Re-upsert exactly the ids Stream said don't exist (whatever the mirror believed), within `deadline`."""
        to_send = []
        for stream_id in dict.fromkeys(stream_ids):
            try:
                identity = Identity.parse(stream_id)
            except ValueError:
                log.error("identities.repair_unknown_id", stream_id=stream_id[:128])
                raise StreamRequestError(
                    f"Stream says user {stream_id[:128]!r} does not exist, and it is not an id this service makes",
                    operation="RepairUsers",
                ) from None
            profile = self.profiles.get(identity)
            if profile is None:
                row = self.mirror.get(identity.stream_id)
                if row is None or not row.placeholder:
                    raise UnknownIdentity([identity.entity_id])
                profile = Profile.placeholder_for(identity)  # Stream says it is gone, so nothing is overwritten
            to_send.append(profile)
        for batch in chunks(to_send):
            users = [stream_user(p) for p in batch]
            await self._call(deadline, partial(stream.upsert_users, users), batch, name="UpdateUsers")
            self._accept(batch)
        log.info("identities.repaired", stream_ids=[p.stream_id for p in to_send][:10], count=len(to_send))


def lost_ids(error: StreamRequestError, batch: list[Profile]) -> set[str] | None:
    """The ids of a partial update that Stream says do not exist (None when the error is about something else)."""
    if isinstance(error, StreamUsersMissing):
        return set(error.missing_ids) & {p.stream_id for p in batch} or {p.stream_id for p in batch}
    if error.status == 404 or "exist" in error.message.lower():
        named = {p.stream_id for p in batch if p.stream_id in error.message}
        return named or {p.stream_id for p in batch}
    return None


async def read_identities(
    session: AsyncSession,
    identities: Iterable[Identity],
    *,
    profiles: Mapping[Identity, Profile] | None = None,
    mirror: Mapping[str, StreamIdentity | None] | None = None,
) -> IdentityBatch:
    """The profiles and mirror rows of these identities (what the caller passes saves the queries).

    The profiles it reads come with their mirror rows joined on (one query per table); a separate query reads only
    the rows of identities whose profile was passed in or that the directory does not have.
    """
    wanted = sorted(set(identities))
    known = dict(profiles or {})
    rows: dict[str, StreamIdentity | None] = {}
    unread = [identity for identity in wanted if identity not in known]
    if unread:
        directory = await load_directory(
            session,
            (i.entity_id for i in unread if i.kind is Kind.USER),
            (i.entity_id for i in unread if i.kind is Kind.COMPANY),
            with_mirror=True,
        )
        for identity in unread:
            profile = directory.profile(identity)
            if profile is not None:
                known[identity] = profile
        rows = directory.mirror
    return IdentityBatch(known, await complete_mirror(session, wanted, {**rows, **(mirror or {})}))

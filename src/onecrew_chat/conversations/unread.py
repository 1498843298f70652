"""Unread conversations per profile: one partial-index scan, behind a short per-profile cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.identity import Identity
from onecrew_chat.models import UNREAD_PREDICATE, ConversationParticipant
from onecrew_chat.runtime import Runtime, Shared

MAX_ENTRIES = 100_000
# How long an invalidation is remembered, so that a count read before it is not cached after it.
INVALIDATION_MEMORY_S = 60.0


async def count_unread(session: AsyncSession, identity: Identity) -> int:
    """Conversations where the profile has a message after its last_read_at (served by ix_conversation_participant_unread)."""
    statement = (
        select(func.count())
        .select_from(ConversationParticipant)
        .where(
            ConversationParticipant.participant_type == identity.kind.value,
            ConversationParticipant.participant_id == identity.entity_id,
            text(UNREAD_PREDICATE),
        )
    )
    return int(await session.scalar(statement) or 0)


@dataclass
class UnreadCount:
    """An answer of the unread-count endpoint."""

    count: int
    cached: bool


class UnreadCache:
    """Per-profile counts kept for `ttl_s`, dropped as soon as a webhook changes that profile's state.

    The cache is in process memory. On PostgreSQL every API process drops the profiles a webhook changed as
    soon as it commits (conversations/unread_broadcast.py, LISTEN/NOTIFY); whatever happens, no entry outlives `ttl_s`.
    """

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES):
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[int, float]] = {}
        self._invalidated: dict[str, float] = {}
        self._all_invalidated_at = float("-inf")

    def get(self, key: str) -> int | None:
        """The cached count, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        count, expires_at = entry
        if self._clock() >= expires_at:
            self._entries.pop(key, None)
            return None
        return count

    def ticket(self) -> float:
        """Take before reading the database; `put` refuses a count read before a later invalidation."""
        return self._clock()

    def put(self, key: str, count: int, ticket: float) -> None:
        """Remember a count read after `ticket`, unless the profile was invalidated since."""
        if self.ttl_s <= 0 or max(self._invalidated.get(key, float("-inf")), self._all_invalidated_at) >= ticket:
            return
        if len(self._entries) >= self._max_entries:
            self._prune()
        self._entries[key] = (count, self._clock() + self.ttl_s)

    def invalidate(self, keys: Iterable[str]) -> None:
        """Forget the counts of these profiles (called after a webhook's changes are committed)."""
        now = self._clock()
        for key in keys:
            self._entries.pop(key, None)
            self._invalidated[key] = now
        if len(self._invalidated) >= self._max_entries:
            horizon = now - max(INVALIDATION_MEMORY_S, self.ttl_s)
            self._invalidated = {k: at for k, at in self._invalidated.items() if at >= horizon}

    def invalidate_all(self) -> None:
        """Forget every count (invalidations may have been missed), including counts being read right now."""
        self._all_invalidated_at = self._clock()
        self._entries.clear()

    def _prune(self) -> None:
        now = self._clock()
        self._entries = {k: entry for k, entry in self._entries.items() if entry[1] > now}
        if len(self._entries) >= self._max_entries:
            self._entries.clear()


_UNREAD_CACHE = Shared("unread counts", lambda runtime: UnreadCache(runtime.settings.unread_cache_ttl_s))


def unread_cache(runtime: Runtime) -> UnreadCache:
    """The process-wide cache, created on first use."""
    return runtime.shared(_UNREAD_CACHE)


async def unread_count(session: AsyncSession, cache: UnreadCache, identity: Identity) -> UnreadCount:
    """The profile's unread conversation count, from the cache when it is fresh."""
    key = identity.stream_id
    cached = cache.get(key)
    if cached is not None:
        return UnreadCount(cached, cached=True)
    ticket = cache.ticket()
    count = await count_unread(session, identity)
    cache.put(key, count, ticket)
    return UnreadCount(count, cached=False)

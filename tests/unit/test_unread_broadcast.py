"""The pieces of the cross-process unread invalidation that need no database: payloads and forgetting everything."""

from __future__ import annotations

from onecrew_chat.conversations.unread import UnreadCache
from onecrew_chat.conversations.unread_broadcast import MAX_PAYLOAD, UnreadListener, unread_payloads


def test_payloads_stay_under_postgresqls_limit_and_carry_every_key():
    keys = {f"onecrew_user_{n:036d}" for n in range(1_000)}  # a 1,000-member group
    payloads = list(unread_payloads(keys))
    assert len(payloads) > 1
    assert all(len(p.encode()) < MAX_PAYLOAD for p in payloads)
    assert {k for p in payloads for k in p.split(",")} == keys


def test_a_notification_drops_the_named_profiles_only():
    cache = UnreadCache(60.0)
    for key in ("a", "b", "c"):
        cache.put(key, 1, cache.ticket())
    UnreadListener("postgresql://unused", cache)._on_notify(None, 1, "onecrew_unread", "a,c")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 1, None)


def test_after_a_reconnect_nothing_read_before_it_is_kept():
    now = [100.0]
    cache = UnreadCache(60.0, clock=lambda: now[0])
    cache.put("kept-before", 1, cache.ticket())
    in_flight = cache.ticket()
    now[0] += 0.001
    cache.invalidate_all()
    now[0] += 0.001
    cache.put("read-during", 2, in_flight)
    assert cache.get("kept-before") is None and cache.get("read-during") is None
    cache.put("read-after", 3, cache.ticket())
    assert cache.get("read-after") == 3

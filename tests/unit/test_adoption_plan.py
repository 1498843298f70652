"""Adoption's pure parts: reading a channel state (both dialects) and deciding pairs, duplicates and skips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from onecrew_chat.identity import Identity, pair_key
from onecrew_chat.sync.cutover.plan import DUPLICATE, PAIR, SKIPPED, Known, decide
from onecrew_chat.sync.cutover.records import ChannelRecord, record_from_state, stream_time

AMR, SAT = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def state_v1(last_read: str, unread: int) -> dict:
    return {
        "channel": {
            "id": "user_company-x",
            "type": "messaging",
            "created_at": "2026-11-01T00:00:00.000000Z",
            "last_message_at": "2026-11-01T00:10:00.000000Z",
            "member_count": 2,
            "name": "",
        },
        "members": [
            {
                "user_id": f"onecrew_company_{SAT}",
                "user": {"id": f"onecrew_company_{SAT}", "role": "admin", "name": "Sat"},
            },
            {"user_id": f"onecrew_user_{AMR}", "user": {"id": f"onecrew_user_{AMR}", "role": "user", "name": "User"}},
        ],
        "messages": [{"text": "x" * 300, "created_at": "2026-11-01T00:10:00.000000Z"}],
        "read": [{"user": {"id": f"onecrew_user_{AMR}"}, "last_read": last_read, "unread_messages": unread}],
    }


def test_v1_state_with_damage_preview_and_read_markers():
    record = record_from_state(state_v1("2026-11-01T00:20:00Z", 0))
    assert record.cid == "messaging:user_company-x" and record.name is None
    assert record.damaged == {f"onecrew_company_{SAT}": "role admin", f"onecrew_user_{AMR}": 'placeholder named "User"'}
    assert len(record.preview) == 200 and record.preview.endswith("…")
    assert record.read_at(f"onecrew_user_{AMR}") == datetime(2026, 11, 1, 0, 20, tzinfo=UTC)


def test_read_markers_follow_streams_unread_count():
    caught_up = record_from_state(state_v1("2026-11-01T00:05:00Z", 0))  # Stream counts nothing unread
    assert caught_up.read_at(f"onecrew_user_{AMR}") == caught_up.last_message_at
    behind = record_from_state(state_v1("2026-11-01T00:30:00Z", 2))  # Stream counts unread messages
    assert behind.read_at(f"onecrew_user_{AMR}") < behind.last_message_at


def test_v2_times_are_nanoseconds():
    assert stream_time(1_790_000_000_123_456_789) == datetime.fromtimestamp(1_790_000_000, UTC) + timedelta(
        microseconds=123456
    )


def pair_record(channel_id: str, last_message_minutes: int | None) -> ChannelRecord:
    at = T0 + timedelta(minutes=last_message_minutes) if last_message_minutes is not None else None
    return ChannelRecord(
        "messaging", channel_id, None, [f"onecrew_user_{AMR}", f"onecrew_company_{SAT}"], 2, T0, at, None
    )


def known(**pairs: str) -> Known:
    return Known(channel_ids=set(), pairs=dict(pairs), users={AMR}, companies={SAT})


def test_the_newest_message_wins_and_a_channel_without_messages_loses():
    decisions = {
        d.record.channel_id: d
        for d in decide([pair_record("a", 5), pair_record("b", 9), pair_record("c", None)], known())
    }
    assert decisions["b"].outcome == PAIR and decisions["b"].conversation_type == "user_company"
    assert (decisions["a"].outcome, decisions["a"].winner) == (DUPLICATE, "b")
    assert (decisions["c"].outcome, decisions["c"].winner) == (DUPLICATE, "b")


def test_a_pair_that_has_a_conversation_keeps_it():
    key = pair_key(Identity.user(AMR), Identity.company(SAT))
    (decision,) = decide([pair_record("a", 5)], known(**{key: "user_company-new"}))
    assert (decision.outcome, decision.winner) == (DUPLICATE, "user_company-new")


def test_a_user_and_company_sharing_a_uuid_is_never_guessed():
    record = ChannelRecord("messaging", "x", None, [f"onecrew_user_{AMR}", f"onecrew_company_{AMR}"], 2, T0, None, None)
    (decision,) = decide([record], Known(channel_ids=set(), pairs={}, users={AMR}, companies=set()))
    assert decision.outcome == SKIPPED and decision.reason == f"members unknown to the directory: onecrew_company_{AMR}"


def test_a_channel_with_history_takes_the_pair_over_from_an_empty_conversation():
    key = pair_key(Identity.user(AMR), Identity.company(SAT))
    empty = Known(channel_ids=set(), pairs={key: "user_company-new"}, users={AMR}, companies={SAT}, empty_pairs={key})
    (decision,) = decide([pair_record("a", 5)], empty)
    assert (decision.outcome, decision.displaces) == (PAIR, "user_company-new")
    (silent,) = decide([pair_record("b", None)], empty)  # two empty channels: the pair keeps its conversation
    assert (silent.outcome, silent.winner, silent.displaces) == (DUPLICATE, "user_company-new", None)

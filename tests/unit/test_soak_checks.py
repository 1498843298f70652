"""The soak's checks find what they claim to find (the soak itself runs with `make soak`, not here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from soak.checks import StreamState, channel_calls, drift, read_logs, runs_twice
from soak.database import Snapshot

U1, U2, U3 = (f"onecrew_user_{n}" for n in ("a", "b", "c"))
READY_AT = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def snapshot() -> Snapshot:
    snap = Snapshot()
    snap.conversations = {"ch1": {"stream_verified_at": READY_AT, "pair_key": "k", "conversation_type": "user_user"}}
    snap.members["ch1"] = {U1, U2}
    snap.profiles = {U1: ("Amr", None), U2: ("Lolo", "https://img.test/2.png"), U3: ("Mona", None)}
    snap.mirrored = {U1, U2}
    return snap


def stream(**changes) -> StreamState:
    state = StreamState(
        channels={"ch1": {U1, U2}},
        channel_names={"ch1": None},
        users={U1: ("Amr", None), U2: ("Lolo", "https://img.test/2.png")},
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_drift_is_none_when_stream_matches():
    assert drift(snapshot(), stream()).none


def test_drift_counts_channels_members_and_profiles():
    found = drift(snapshot(), stream(channels={"ch1": {U1, U3}, "ch2": set()}, users={U1: ("Amr (old)", None)}))
    assert found.extra_channels == ["ch2"] and found.missing_channels == []
    assert (found.missing_members, found.extra_members) == (1, 1)
    assert found.stale_profiles == [U1, U2], "an old name, and a mirrored identity Stream does not have"


def test_state_file_is_read(tmp_path: Path):
    path = tmp_path / "state.json"
    path.write_text(
        json.dumps(
            {
                "users": [{"id": U1, "name": "Amr", "image": None}, {"id": U2, "name": "X", "deleted_at": 1}],
                "channels": [
                    {"type": "messaging", "id": "ch1", "custom": {"name": "G"}, "members": [{"user_id": U1}]},
                    {"type": "livestream", "id": "other", "members": []},
                ],
            }
        )
    )
    state = StreamState.read(path)
    assert state.channels == {"ch1": {U1}} and state.channel_names == {"ch1": "G"}
    assert state.users == {U1: ("Amr", None)}


def _log(path: Path, *events: dict) -> Path:
    path.write_text("plain uvicorn line\n" + "\n".join(json.dumps(e) for e in events) + '\n{"half a li')
    return path


def test_runs_twice_from_logs(tmp_path: Path):
    created = {"event": "channel.created", "channel_id": "ch1", "timestamp": "2026-11-30T12:00:00.000001Z"}
    later = created | {"timestamp": "2026-11-30T12:00:05Z"}
    killed = _log(tmp_path / "api-1.log", created, {"event": "outbox.done", "id": 7})
    alive = _log(tmp_path / "worker-a-1.log", later, {"event": "outbox.done", "id": 7}, {"event": "outbox.lease_lost"})
    events = read_logs([killed, alive])

    after_kill = runs_twice(events, killed_logs={killed})
    assert after_kill.provisioned_twice == [] and after_kill.rerun_after_kill == 1
    assert after_kill.done_twice == [7] and after_kill.lease_lost == 1

    no_kill = runs_twice(events, killed_logs=set())
    assert no_kill.provisioned_twice == ["ch1"]


def test_channel_calls_flag_a_call_that_arrived_after_ready():
    ready = READY_AT.timestamp()
    path = "/api/v2/chat/channels/messaging/ch1/query"
    records = [
        {"operation": "GetOrCreateChannel", "path": path, "status": 201, "at": ready - 0.5, "duration_ms": 100},
        {"operation": "GetOrCreateChannel", "path": path, "status": 0, "at": ready + 0.5, "duration_ms": 1000},
        {"operation": "UpdateUsers", "path": "/api/v2/users", "status": 201, "at": ready + 9, "duration_ms": 1},
    ]
    calls = channel_calls(records, snapshot())
    assert calls["after_ready"] == [] and calls["by_status"] == {0: 1, 201: 1}, "arrived 0.5 s before ready"
    records.append(
        {"operation": "GetOrCreateChannel", "path": path, "status": 201, "at": ready + 2, "duration_ms": 100}
    )
    calls = channel_calls(records, snapshot())
    assert calls["after_ready"] == ["ch1"] and calls["accepted_again"] == 1

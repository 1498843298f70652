"""What the soak compares once the faults stop: our database, the emulator's state, its request log, the
processes' logs and what the clients saw."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from soak.database import Snapshot


@dataclass
class StreamState:
    """The emulator's state file: channels (id -> member ids, name) and users (id -> name, image)."""

    channels: dict[str, set[str]] = field(default_factory=dict)
    channel_names: dict[str, str | None] = field(default_factory=dict)
    users: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> StreamState:
        state = cls()
        if not path.exists():
            return state
        raw = json.loads(path.read_text(encoding="utf-8"))
        for channel in raw.get("channels", []):
            if channel["type"] != "messaging":
                continue
            state.channels[channel["id"]] = {m["user_id"] for m in channel.get("members", [])}
            state.channel_names[channel["id"]] = (channel.get("custom") or {}).get("name")
        for user in raw.get("users", []):
            if user.get("deleted_at"):
                continue
            state.users[user["id"]] = (user.get("name"), user.get("image"))
        return state


@dataclass
class Drift:
    """Differences between our database and Stream (all zero when converged)."""

    missing_channels: list[str]
    extra_channels: list[str]
    missing_members: int
    extra_members: int
    stale_profiles: list[str]

    @property
    def none(self) -> bool:
        return not (
            self.missing_channels
            or self.extra_channels
            or self.missing_members
            or self.extra_members
            or self.stale_profiles
        )


def drift(snap: Snapshot, stream: StreamState) -> Drift:
    ours, theirs = set(snap.conversations), set(stream.channels)
    missing_members = extra_members = 0
    for channel_id in ours & theirs:
        missing_members += len(snap.members[channel_id] - stream.channels[channel_id])
        extra_members += len(stream.channels[channel_id] - snap.members[channel_id])
    stale = []
    for stream_id, (name, image) in sorted(stream.users.items()):
        expected = snap.profiles.get(stream_id)
        if expected is not None and (name, image or None) != (expected[0], expected[1] or None):
            stale.append(stream_id)
    stale += sorted(s for s in snap.mirrored if s not in stream.users)  # recorded as sent, absent from Stream
    return Drift(sorted(ours - theirs), sorted(theirs - ours), missing_members, extra_members, stale)


def read_logs(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every JSON log line of every process generation (a killed process may leave half a line: skipped)."""
    events = []
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                events.append((path, json.loads(line)))
            except ValueError:
                continue
    return events


@dataclass
class RunsTwice:
    """Work done twice. `done_twice`: outbox rows recorded done by two runs; `lease_lost`: runs that finished after
    their lease passed to another; `provisioned_twice`: channels whose Stream calls completed in two runs when the
    first run's process was not killed before recording (a kill in between is a legitimate rerun, counted apart)."""

    done_twice: list[int]
    lease_lost: int
    provisioned_twice: list[str]
    rerun_after_kill: int
    outbox_done: int


def runs_twice(events: list[tuple[Path, dict[str, Any]]], killed_logs: set[Path]) -> RunsTwice:
    done: Counter[int] = Counter()
    lease_lost = 0
    created: dict[str, list[tuple[datetime, Path]]] = defaultdict(list)
    for path, event in events:
        name = event.get("event")
        if name == "outbox.done":
            done[int(event["id"])] += 1
        elif name == "outbox.lease_lost":
            lease_lost += 1
        elif name == "channel.created":
            created[event["channel_id"]].append((datetime.fromisoformat(event["timestamp"]), path))
    twice, after_kill = [], 0
    for channel_id, runs in created.items():
        runs.sort()
        for (_first, first_log), _second in zip(runs, runs[1:], strict=False):
            if first_log in killed_logs:
                after_kill += 1
            else:
                twice.append(channel_id)
    return RunsTwice(
        sorted(i for i, n in done.items() if n > 1), lease_lost, sorted(set(twice)), after_kill, sum(done.values())
    )


def channel_calls(records: list[dict[str, Any]], snap: Snapshot) -> dict[str, Any]:
    """GetOrCreateChannel in the emulator's request log: calls by status; channels whose call was accepted more
    than once (an answer the caller never saw: cut by its deadline, withheld by the timeout fault, or owed to a
    killed process); and calls that arrived after their conversation was recorded ready (`at - duration` against
    `stream_verified_at`): a run that should have found the work done, i.e. provisioning run twice."""
    by_status: Counter[int] = Counter()
    accepted: Counter[str] = Counter()
    after_ready: list[str] = []
    for record in records:
        if record["operation"] != "GetOrCreateChannel":
            continue
        by_status[record["status"]] += 1
        channel_id = [p for p in record["path"].split("/") if p][-2]
        if 200 <= record["status"] < 300:
            accepted[channel_id] += 1
        row = snap.conversations.get(channel_id)
        verified = row["stream_verified_at"] if row else None
        if verified is not None and record["at"] - record["duration_ms"] / 1000 > verified.timestamp():
            after_ready.append(channel_id)
    return {
        "by_status": dict(sorted(by_status.items())),
        "accepted_again": sum(n - 1 for n in accepted.values() if n > 1),
        "after_ready": after_ready,
    }


def operations(records: list[dict[str, Any]]) -> dict[str, Counter[int]]:
    """Emulator calls per operation and status (0 = answer withheld by the timeout-after-write fault)."""
    table: dict[str, Counter[int]] = defaultdict(Counter)
    for record in records:
        table[record["operation"]][record["status"]] += 1
    return table

"""The soak's verdict: every figure printed, each check marked PASS or FAIL; the exit code follows the checks."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from soak.checks import Drift, RunsTwice, StreamState
from soak.client import Tally
from soak.database import Snapshot
from soak.directory import Acknowledged


@dataclass
class Report:
    lines: list[tuple[str, Any, bool | None]] = field(default_factory=list)

    def info(self, label: str, value: Any) -> None:
        self.lines.append((label, value, None))

    def check(self, label: str, value: Any, ok: bool) -> None:
        self.lines.append((label, value, ok))

    @property
    def passed(self) -> bool:
        return all(ok is not False for _, _, ok in self.lines)

    def render(self) -> str:
        out = []
        for label, value, ok in self.lines:
            mark = "      " if ok is None else ("PASS  " if ok else "FAIL  ")
            out.append(f"{mark}{label:<58} {value}")
        out.append("")
        out.append("SOAK PASSED" if self.passed else "SOAK FAILED")
        return "\n".join(out)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_side(report: Report, tally: Tally, n_requests: int) -> None:
    kinds = Counter(kind for kind, _status in tally.final.elements())
    report.info("requests (logical, by kind)", dict(sorted(kinds.items())))
    report.info("HTTP attempts (retries included)", len(tally.attempts))
    report.info("final answers by status", dict(sorted(Counter(s for _k, s in tally.final.elements()).items())))
    report.info("requests that needed a retry", dict(sorted(tally.retried.items())))
    report.info("unkeyed requests retried past the app's 3 (API restarting)", dict(sorted(tally.outlasted.items())))
    waits = sorted(tally.keyed_waits, key=lambda w: w[0])
    if waits:
        slowest, history = waits[-1]
        in_use = sum(h.count("409/idempotency_key_in_use") for _, h in waits)
        report.info(
            "keyed creates answered after retries: count, slowest (s), 409 in_use seen",
            f"{len(waits)}, {slowest:.1f}, {in_use} (slowest: {' '.join(history[:4])}...)",
        )
    all_ms = [x * 1000 for values in tally.latencies.values() for x in values]
    report.info(
        "latency of answered attempts p50 / p95 / max (ms)",
        f"{statistics.median(all_ms):.0f} / {_pct(all_ms, 0.95):.0f} / {max(all_ms):.0f}" if all_ms else "-",
    )
    errors = tally.server_errors()
    excused = [s for s in errors if s.status == 503 and s.retry_after and s.in_kill_window]
    cut = tally.cut_off()
    cut_in_window = [s for s in cut if s.in_kill_window]
    report.info("attempts cut off (no answer) during a kill window", len(cut_in_window))
    report.info("503 with Retry-After during a kill window (retried)", len(excused))
    report.check(
        "5xx answers seen by clients (besides those)",
        _describe(e for e in errors if e not in excused),
        len(errors) == len(excused),
    )
    report.check(
        "attempts cut off outside any kill window", len(cut) - len(cut_in_window), len(cut) == len(cut_in_window)
    )
    # A create whose every try outlasted the deadline (faults, kills, the visibility delay) ends on the 408 the app
    # shows as a timeout; its conversation is recorded and the worker finishes it (checked below by convergence).
    still_provisioning = [u for u in tally.unanswered if u.endswith("'408/provisioning_timeout']")]
    report.info(
        "creates still provisioning after the app's retries (408; the next tap opens it)",
        len(still_provisioning),
    )
    lost = [u for u in tally.unanswered if u not in still_provisioning]
    report.check("requests with no final answer after the app's retries", lost[:5] or 0, not lost)
    unexpected = {k: n for k, n in tally.final.items() if k[1] >= 400}
    report.check(
        "requests answered 4xx (none is expected)",
        {f"{k} {s}": n for (k, s), n in unexpected.items()} or 0,
        not unexpected,
    )
    report.check("requests issued", f"{sum(kinds.values())} of {n_requests}", sum(kinds.values()) == n_requests)


def _describe(seen: Any) -> Any:
    counted = Counter(f"{s.kind} {s.status} {s.code}" for s in seen)
    return dict(counted) or 0


def convergence(
    report: Report, snap: Snapshot, stream: StreamState, drift: Drift, ack: Acknowledged, converge_s: float | None
) -> None:
    report.info("conversations (database) / channels (emulator)", f"{len(snap.conversations)} / {len(stream.channels)}")
    report.check(
        "conversations = channels (missing, extra)",
        f"{len(drift.missing_channels)}, {len(drift.extra_channels)}",
        not drift.missing_channels and not drift.extra_channels,
    )
    report.check(
        "missing members / extra members",
        f"{drift.missing_members} / {drift.extra_members}",
        drift.missing_members == 0 and drift.extra_members == 0,
    )
    report.check(
        "stale profiles (emulator name/image != directory)", drift.stale_profiles[:5] or 0, not drift.stale_profiles
    )
    lost = sorted(ack.channels() - set(snap.conversations))
    report.check("acknowledged creates missing from the database", lost[:5] or 0, not lost)
    client_dupes = {p: ids for p, ids in ack.by_pair.items() if len(ids) > 1}
    per_pair: Counter[frozenset[str]] = Counter(
        frozenset(snap.members[c]) for c, row in snap.conversations.items() if row["pair_key"] is not None
    )
    report.info("distinct pairs created / pair creates acknowledged", f"{len(ack.by_pair)} / {ack.pair_answers}")
    report.check(
        "duplicate pairs (answers with 2+ ids, database rows)",
        f"{len(client_dupes)}, {sum(n - 1 for n in per_pair.values() if n > 1)}",
        not client_dupes and all(n == 1 for n in per_pair.values()),
    )
    by_name: dict[str, list[str]] = defaultdict(list)
    for channel_id, row in snap.conversations.items():
        if row["conversation_type"] == "group":
            by_name[row["name"]].append(channel_id)
    key_dupes = {k: ids for k, ids in ack.by_key.items() if len(ids) > 1}
    db_dupes = [k for k, name in ack.group_names.items() if len(by_name.get(name, [])) > 1]
    stream_names = Counter(n for n in stream.channel_names.values() if n)
    stream_dupes = [k for k, name in ack.group_names.items() if stream_names[name] > 1]
    report.info(
        "Idempotency-Keys used / answered / replays served",
        f"{len(ack.group_names)} / {len(ack.by_key)} / {ack.replayed}",
    )
    report.check(
        "duplicate keyed groups (answers, database, emulator)",
        f"{len(key_dupes)}, {len(db_dupes)}, {len(stream_dupes)}",
        not key_dupes and not db_dupes and not stream_dupes,
    )
    report.check("outbox rows stuck (pending) or dead", _unfinished(snap), not snap.outbox_unfinished)
    report.check("conversations not ready", snap.not_ready, snap.not_ready == 0)
    report.info("outbox rows by status", snap.outbox)
    report.check(
        "time to converge after the faults stopped",
        f"{converge_s:.1f} s" if converge_s is not None else "did not converge",
        converge_s is not None,
    )


def _unfinished(snap: Snapshot) -> Any:
    if not snap.outbox_unfinished:
        return 0
    return [
        f"{r['id']} {r['kind']} {r['status']} attempts={r['attempts']} {str(r['last_error'])[:80]}"
        for r in snap.outbox_unfinished[:5]
    ]


def work_twice(
    report: Report, runs: RunsTwice, calls: dict[str, Any], ops: dict[str, Counter[int]], log_complete: bool
) -> None:
    report.info("outbox runs recorded done (worker logs)", runs.outbox_done)
    report.check("outbox rows recorded done by two runs", runs.done_twice[:5] or 0, not runs.done_twice)
    report.check("outbox runs that lost their lease (finished after a takeover)", runs.lease_lost, runs.lease_lost == 0)
    report.check(
        "channels provisioned twice with no kill in between",
        runs.provisioned_twice[:5] or 0,
        not runs.provisioned_twice,
    )
    report.info("channels provisioned again after their first run was killed", runs.rerun_after_kill)
    report.info("GetOrCreateChannel calls by status (0 = withheld answer)", calls["by_status"])
    report.info("GetOrCreateChannel accepted again (answer unseen: deadline, fault, kill)", calls["accepted_again"])
    report.check(
        "GetOrCreateChannel arriving after its conversation was ready",
        f"{len(calls['after_ready'])} {calls['after_ready'][:3]}".strip()
        + ("" if log_complete else " [request log truncated]"),
        not calls["after_ready"] and log_complete,
    )
    for op, statuses in sorted(ops.items()):
        report.info(f"emulator {op}", dict(sorted(statuses.items())))

"""The report of one `import channels` run: adopted pairs, groups, duplicates per pair, skipped channels, repairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onecrew_chat.sync.cutover.plan import DUPLICATE, GROUP, PAIR, SKIPPED, Decision

SHOWN_PER_SECTION = 25  # lines per kind in the text form (a real cut-over adopts thousands); --json has them all


@dataclass
class AdoptionReport:
    """What a run read, decided and (unless a dry run) wrote."""

    dry_run: bool
    pages: int = 0
    channels_read: int = 0  # new to the ledger in this run
    decided_before: dict[str, int] = field(default_factory=dict)  # earlier runs' outcomes: already known, skipped now
    reopened: int = 0  # skipped channels decided again (--retry-skipped)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    duplicates: dict[str, dict[str, Any]] = field(default_factory=dict)  # pair_key -> {adopted, others: [...]}
    skipped: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)  # identities the old backend damaged, sent again
    repaired_ids: set[str] = field(default_factory=set)
    stream_calls: int = 0
    ms: float = 0.0

    def add_repaired(self, stream_id: str, problem: str) -> None:
        """One damaged identity, reported once per run."""
        if stream_id not in self.repaired_ids:
            self.repaired_ids.add(stream_id)
            self.repaired.append({"stream_id": stream_id, "problem": problem})

    def add(self, decision: Decision) -> None:
        """Count one decision."""
        record = decision.record
        if decision.outcome == PAIR:
            self.pairs.append(
                {
                    "channel_id": record.channel_id,
                    "conversation_type": decision.conversation_type,
                    "members": [i.stream_id for i in decision.identities],
                    "last_message_at": record.last_message_at.isoformat() if record.last_message_at else None,
                    "replaces": decision.displaces,  # the empty channel whose conversation gave up the pair
                }
            )
            self.duplicates.setdefault(decision.pair_key or "", {"adopted": record.channel_id, "others": []})
        elif decision.outcome == GROUP:
            self.groups.append(
                {"channel_id": record.channel_id, "name": record.name, "members": len(decision.identities)}
            )
        elif decision.outcome == DUPLICATE:
            entry = self.duplicates.setdefault(decision.pair_key or "", {"adopted": decision.winner, "others": []})
            entry["others"].append(record.channel_id)
        elif decision.outcome == SKIPPED:
            self.skipped.append({"channel_id": record.channel_id, "reason": decision.reason})

    def duplicate_pairs(self) -> dict[str, dict[str, Any]]:
        """Only the pairs that had more than one channel."""
        return {key: value for key, value in self.duplicates.items() if value["others"]}

    def as_json(self) -> dict[str, Any]:
        """The --json output."""
        return {
            "dry_run": self.dry_run,
            "pages": self.pages,
            "channels_read": self.channels_read,
            "already_decided": self.decided_before,
            "reopened": self.reopened,
            "adopted_pairs": self.pairs,
            "groups": self.groups,
            "duplicates": self.duplicate_pairs(),
            "skipped": self.skipped,
            "repaired_identities": self.repaired,
            "stream_calls": self.stream_calls,
            "ms": self.ms,
        }

    def lines(self) -> list[str]:
        """The text output, one line each."""
        verb = "would adopt" if self.dry_run else "adopted"
        lines = [
            f"Read {self.channels_read} new channels in {self.pages} pages ({self.stream_calls} Stream calls, "
            f"{self.ms / 1000:.1f} s).",
            f"Pairs {verb}: {len(self.pairs)}; groups {verb}: {len(self.groups)}; "
            f"duplicates left untouched: {sum(len(v['others']) for v in self.duplicate_pairs().values())}; "
            f"skipped: {len(self.skipped)}.",
        ]
        action = "would repair" if self.dry_run else "repaired"
        sections = [
            (
                "pairs",
                [
                    f"  pair  {p['channel_id']}  {p['conversation_type']}  {' + '.join(p['members'])}"
                    + (
                        f"\n        took the pair over from {p['replaces']}, which has no message"
                        if p.get("replaces")
                        else ""
                    )
                    for p in self.pairs
                ],
            ),
            (
                "groups",
                [f"  group {g['channel_id']}  {g['name'] or '(no name)'}  {g['members']} members" for g in self.groups],
            ),
            (
                "duplicates",
                [
                    f"  duplicates of {key}: kept {entry['adopted']}; left as they are: {', '.join(entry['others'])}"
                    for key, entry in self.duplicate_pairs().items()
                ],
            ),
            ("skipped", [f"  skipped {s['channel_id']}: {s['reason']}" for s in self.skipped]),
            ("repaired", [f"  {action} {r['stream_id']}: {r['problem']}" for r in self.repaired]),
        ]
        for name, entries in sections:
            lines.extend(entries[:SHOWN_PER_SECTION])
            if len(entries) > SHOWN_PER_SECTION:
                lines.append(f"  ... and {len(entries) - SHOWN_PER_SECTION} more {name} (--json lists every one)")
        if self.reopened:
            lines.append(f"Decided again: {self.reopened} channels skipped by earlier runs (--retry-skipped).")
        if self.decided_before:
            shown = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.decided_before.items()))
            lines.append(f"Already decided by earlier runs (left as they are): {shown}.")
        if self.dry_run:
            lines.append("Dry run: nothing was written to the database or sent to Stream.")
        elif not (self.pairs or self.groups or self.duplicates or self.skipped):
            lines.append("Nothing new: every channel in Stream is already known.")
        return lines

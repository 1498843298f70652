"""What the reconciler finds: how a channel in Stream differs from its conversation, one run's report and its record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat import metrics
from onecrew_chat.models import Conversation, ReconcileRun
from onecrew_chat.stream.client import ChannelState, StreamUserState
from onecrew_chat.sync.channels import participant_identities
from onecrew_chat.sync.participants import Profile

IDENTITY_MISSING = "identity_missing"
CHANNEL_MISSING = "channel_missing"
MEMBER_MISSING = "member_missing"
PROFILE_STALE = "profile_stale"
DRIFT_KINDS = (IDENTITY_MISSING, PROFILE_STALE, CHANNEL_MISSING, MEMBER_MISSING)
EXAMPLES = 5  # ids shown per drift kind in logs and on the command line
KEEP_RUNS = timedelta(days=30)  # reconcile_run rows older than this are deleted when a run is recorded


@dataclass(frozen=True)
class ChannelFinding:
    """One conversation compared with its Stream channel."""

    conversation_id: str
    channel_id: str
    channel_missing: bool = False
    missing: tuple[str, ...] = ()  # participants Stream's complete member list lacks
    unverified: tuple[str, ...] = ()  # participants not listed by a channel with more members than Stream lists

    @property
    def drifted(self) -> bool:
        """Stream surely lacks the channel or a member."""
        return self.channel_missing or bool(self.missing)

    @property
    def needs_provisioning(self) -> bool:
        """Worth (re-)provisioning: drifted, or members that could not be verified (adding them again is harmless)."""
        return self.drifted or bool(self.unverified)


def compare_channel(conversation: Conversation, state: ChannelState | None) -> ChannelFinding:
    """Compare a conversation (participants loaded) with Stream's state of its channel (None: no such channel).

    Stream lists at most 100 members per channel: when it says the channel has more, a participant it does not
    list may well be there, so it is "unverified" rather than missing.
    """
    if state is None:
        return ChannelFinding(conversation.id, conversation.channel_id, channel_missing=True)
    listed = set(state.member_ids)
    absent = tuple(i.stream_id for i in participant_identities(conversation) if i.stream_id not in listed)
    complete = state.member_count is None or state.member_count <= len(state.member_ids)
    if complete:
        return ChannelFinding(conversation.id, conversation.channel_id, missing=absent)
    return ChannelFinding(conversation.id, conversation.channel_id, unverified=absent)


def profile_differs(profile: Profile | None, state: StreamUserState) -> bool:
    """Stream shows another name, image or role than the directory's profile (None: not in the directory)."""
    if profile is None:
        return False
    return state.name != profile.name or (state.image or None) != profile.image or state.role not in (None, "user")


@dataclass
class Report:
    """What one reconcile run checked, found and did."""

    repair: bool
    identities_checked: int = 0
    conversations_checked: int = 0
    drift: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIFT_KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in DRIFT_KINDS})
    unverified: int = 0  # conversations with members Stream does not list (channels of more than 100 members)
    identity_syncs_queued: int = 0
    provisions_queued: int = 0
    webhook_drift_open: int = 0  # open channel_drift rows looked at
    webhook_drift_agreeing: int = 0  # of those, the ones Stream agrees with again (resolved when repairing)
    stream_calls: int = 0
    stopped_early: str | None = None  # why the run ended before checking everything
    skipped: bool = False  # another process was reconciling
    ms: float = 0.0
    resume: tuple[str, str] | None = None  # (phase, last key checked) when stopped early: where the next run goes on

    def note(self, kind: str, examples: list[str]) -> None:
        """Count drift of `kind` (one per example) and keep the first few ids."""
        self.drift[kind] += len(examples)
        shown = self.examples[kind]
        shown.extend(examples[: max(0, EXAMPLES - len(shown))])

    @property
    def total_drift(self) -> int:
        """All drift found, of every kind."""
        return sum(self.drift.values())

    def log_fields(self) -> dict[str, Any]:
        """The fields of the `reconcile.finished` log line."""
        return {
            "repair": self.repair,
            "identities_checked": self.identities_checked,
            "conversations_checked": self.conversations_checked,
            **self.drift,
            "unverified": self.unverified,
            "identity_syncs_queued": self.identity_syncs_queued,
            "provisions_queued": self.provisions_queued,
            "webhook_drift_open": self.webhook_drift_open,
            "webhook_drift_agreeing": self.webhook_drift_agreeing,
            "stream_calls": self.stream_calls,
            "stopped_early": self.stopped_early,
            "ms": self.ms,
        }


async def record_reconcile_run(session: AsyncSession, finished_at: datetime, drift_counts: dict[str, int]) -> None:
    """Record that a reconcile run finished at `finished_at` having found `drift_counts` (kind -> count).

    Runs in the caller's transaction (the caller commits); rows older than KEEP_RUNS go at the same time.
    """
    session.add(ReconcileRun(finished_at=finished_at, drift={str(k): int(v) for k, v in drift_counts.items()}))
    await session.execute(
        delete(ReconcileRun)
        .where(ReconcileRun.finished_at < finished_at - KEEP_RUNS)
        .execution_options(synchronize_session=False)
    )
    metrics.RECONCILE_LAST_RUN.set(finished_at.timestamp())

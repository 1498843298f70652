"""During a cut-over: before a create makes a new channel for a pair, adopt the pair's channel Stream already has.

The old backend keeps starting pairs until the app switches; a pair it started after `import channels` has a
channel the service does not know. One QueryChannels call (type messaging, exactly these two members: any of the
old backend's id schemes) finds it; it is adopted as `import channels` would adopt it (ledger row, identity repair,
the newest channel wins, a generic name queued for removal), and the create answers it.
"""

from __future__ import annotations

from functools import partial

from onecrew_chat.identity import CHANNEL_TYPE, Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.runtime import Runtime
from onecrew_chat.sync.cutover.apply import apply_decisions
from onecrew_chat.sync.cutover.ledger import DbLedger
from onecrew_chat.sync.cutover.plan import decide
from onecrew_chat.sync.cutover.records import ChannelRecord, record_from_state
from onecrew_chat.sync.cutover.report import AdoptionReport
from onecrew_chat.sync.cutover.scan import SORT
from onecrew_chat.sync.deadline import Deadline

log = get_logger(__name__)

MAX_FOUND = 10  # channels of one pair looked at (the old backend made at most a few per pair)


def pair_filter(identities: list[Identity]) -> dict[str, object]:
    """Channels of type messaging whose members are exactly these identities."""
    members = sorted(i.stream_id for i in identities)
    return {"type": CHANNEL_TYPE, "members": {"$eq": members}, "member_count": len(members)}


async def find_pair_channels(runtime: Runtime, identities: list[Identity], deadline: Deadline) -> list[ChannelRecord]:
    """The pair's channels in Stream (checked here too: exactly these members, no more)."""
    wanted = sorted(i.stream_id for i in identities)
    states = await deadline.run(
        partial(runtime.stream.query_channels_page, pair_filter(identities), sort=SORT, limit=MAX_FOUND),
        name="QueryChannels",
    )
    records = [record_from_state(state) for state in states]
    return [r for r in records if sorted(set(r.member_ids)) == wanted and r.member_count == len(wanted)]


async def adopt_pair_channel(runtime: Runtime, identities: list[Identity], deadline: Deadline) -> AdoptionReport | None:
    """Adopt the pair's existing channel(s); None when Stream has none. Raises StreamError when Stream fails."""
    found = await find_pair_channels(runtime, identities, deadline)
    if not found:
        return None
    ledger = DbLedger(runtime.sessionmaker, CHANNEL_TYPE)
    undecided = await ledger.stage(found)
    report = AdoptionReport(dry_run=False)
    decisions = decide(undecided, await ledger.known(undecided))
    await apply_decisions(runtime, decisions, report, deadline=deadline)
    log.info(
        "adoption.found_at_create",
        channels=[r.channel_id for r in found],
        pairs=[p["channel_id"] for p in report.pairs],
        skipped=[s["reason"] for s in report.skipped],
    )
    return report

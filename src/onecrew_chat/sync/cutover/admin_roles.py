"""`onecrew-chat stream demote-admins`: no app-wide admin left in OneCrew's id space.

The old backend upserted companies with Stream's app-wide `admin` role, which lets a user token read every channel.
`sync identities` and `import channels` repair the identities the directory holds; this repair reads Stream's own
list of admins instead, so it also reaches ids the directory no longer holds (soft-deleted companies, the
`onecrew_company_<user uuid>` ghosts of the old backend's guess). Every admin whose id is in OneCrew's id space
(`onecrew_user_*`, `onecrew_company_*`) gets role `user` by a partial update (nothing else of the user changes),
100 per call; admins outside that space are listed and left alone. Every call goes through the gateway within a
deadline that waits out Stream's rate limits. A second run finds nothing to change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from onecrew_chat.identity import STREAM_PREFIX
from onecrew_chat.logging import get_logger
from onecrew_chat.stream.client import MAX_BATCH, StreamGateway, StreamUserState
from onecrew_chat.sync.deadline import Deadline

log = get_logger(__name__)

ONECREW_SPACE = (f"{STREAM_PREFIX}user_", f"{STREAM_PREFIX}company_")
CALL_DEADLINE_S = 90.0  # one call may wait out a whole rate-limit window (Stream's are per minute)
SHOWN = 20  # ids listed per line in the text report


def in_onecrew_space(stream_id: str) -> bool:
    """Whether the id is one OneCrew's backends make (whatever the directory holds today)."""
    return stream_id.startswith(ONECREW_SPACE)


@dataclass
class DemotionReport:
    """What one run found and changed."""

    dry_run: bool
    admins: int = 0
    demoted: list[str] = field(default_factory=list)  # would be demoted, on a dry run
    left_alone: list[str] = field(default_factory=list)  # admins outside OneCrew's id space
    stream_calls: int = 0
    ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The --json output."""
        return {
            "dry_run": self.dry_run,
            "admins_found": self.admins,
            "demoted": self.demoted,
            "left_alone": self.left_alone,
            "stream_calls": self.stream_calls,
            "ms": self.ms,
        }

    def lines(self) -> list[str]:
        """The text output (id lists bounded: --json has them all)."""
        verb = "would demote" if self.dry_run else "demoted"
        out = [
            f"Stream users with the app-wide admin role: {self.admins} ({self.stream_calls} Stream calls, "
            f"{self.ms / 1000:.1f} s)."
        ]
        if self.demoted:
            out.append(f"In OneCrew's id space, {verb} to role user: {len(self.demoted)}.")
            out.extend(f"  {stream_id}" for stream_id in self.demoted[:SHOWN])
            if len(self.demoted) > SHOWN:
                out.append(f"  ... and {len(self.demoted) - SHOWN} more (--json lists every one)")
        if self.left_alone:
            shown = ", ".join(self.left_alone[:SHOWN])
            more = f" and {len(self.left_alone) - SHOWN} more" if len(self.left_alone) > SHOWN else ""
            out.append(f"Left alone (not OneCrew ids): {len(self.left_alone)}: {shown}{more}.")
        if self.dry_run:
            out.append("Dry run: nothing was sent.")
        elif not self.demoted:
            out.append("Nothing to change: no user in OneCrew's id space has the admin role.")
        return out

    def as_text(self) -> str:
        """The text output as one string."""
        return "\n".join(self.lines())


async def admins(stream: StreamGateway) -> list[StreamUserState]:
    """Every user Stream holds with the admin role, paged by id."""
    found: list[StreamUserState] = []
    after: str | None = None
    while True:
        page = await Deadline(CALL_DEADLINE_S).run(partial(stream.query_admins_page, after_id=after), name="QueryUsers")
        found.extend(page)
        if len(page) < MAX_BATCH:
            return found
        after = page[-1].id


async def demote_admins(stream: StreamGateway, *, dry_run: bool = False) -> DemotionReport:
    """Read Stream's admins; demote those in OneCrew's id space (100 per call) unless a dry run."""
    started, calls = time.perf_counter(), stream.calls
    report = DemotionReport(dry_run=dry_run)
    try:
        found = await admins(stream)
        report.admins = len(found)
        ours = [user.id for user in found if in_onecrew_space(user.id)]
        report.left_alone = [user.id for user in found if not in_onecrew_space(user.id)]
        for start in range(0, len(ours), MAX_BATCH):
            batch = ours[start : start + MAX_BATCH]
            if not dry_run:
                await Deadline(CALL_DEADLINE_S).run(partial(stream.demote_to_user, batch), name="UpdateUsersPartial")
            report.demoted.extend(batch)
    finally:
        report.stream_calls = stream.calls - calls
        report.ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "adoption.admins_demoted",
            dry_run=dry_run,
            admins=report.admins,
            demoted=len(report.demoted),
            left_alone=len(report.left_alone),
            stream_calls=report.stream_calls,
        )
    return report


def to_json(report: DemotionReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.as_json(), indent=2, sort_keys=True)

"""`onecrew-chat db downgrade REV`: undo this version's newest migrations, after its code was rolled back.

Only the migrations this version ships can be undone (their `downgrade()` is in this code), only down to a
migration it ships (never to an empty database), and only with `--yes`: without it the command shows what would
be undone and changes nothing. Rolling back one release needs no downgrade at all when the newer release's
migrations were expand-only (docs/operations.md, "Upgrade and rollback").
"""

from __future__ import annotations

from dataclasses import dataclass

from onecrew_chat.config import Settings
from onecrew_chat.schema_status import Migration, database_position, schema_status, shipped_migrations


class DowngradeRefused(Exception):
    """The downgrade cannot be done by this version; the message says why and what to do instead."""


@dataclass(frozen=True)
class DowngradePlan:
    """From the database's migration down to `target`: the migrations undone, newest first."""

    current: str
    target: str
    undone: list[Migration]


async def plan_downgrade(settings: Settings, target: str) -> DowngradePlan:
    """What `db downgrade target` would undo on the configured database, or DowngradeRefused."""
    shipped = shipped_migrations()
    ids = [m.revision for m in shipped]
    if target not in ids:
        raise DowngradeRefused(
            f"{target!r} is not a migration this version ships ({ids[0]} to {ids[-1]}; see `onecrew-chat db history`)"
        )
    status = schema_status(await database_position(settings))
    if status.current is None:
        raise DowngradeRefused("the database has no schema: nothing to undo")
    if not status.known:
        raise DowngradeRefused(
            f"the database is at migration {status.current}, newer than this version knows: run `db downgrade` "
            f"with the version that migrated it (its code holds that migration's downgrade)"
        )
    if ids.index(target) >= ids.index(status.current):
        raise DowngradeRefused(f"the database is at migration {status.current}, not past {target}: nothing to undo")
    undone = shipped[ids.index(target) + 1 : ids.index(status.current) + 1]
    return DowngradePlan(status.current, target, list(reversed(undone)))


def plan_lines(plan: DowngradePlan, shown: str, head: str) -> list[str]:
    """The plan in words, for the operator to read before `--yes`."""
    lines = [f"Database {shown}: from migration {plan.current} down to {plan.target}, undoing:"]
    lines += [f"  {m.revision}  {m.title}" for m in plan.undone]
    lines.append(
        f"Whatever those migrations hold is dropped. Code of this version (head {head}) no longer starts on the "
        f"result: roll the processes back to a version whose newest migration is {plan.target} first."
    )
    return lines

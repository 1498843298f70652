"""One batch of raw rows: validate each, write the valid ones in bulk, one outcome per row (never commits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.accounts.directory_import.kinds import STATUSES, DirectoryKind, Outcome, rejected, validate
from onecrew_chat.accounts.directory_import.writes import upsert_members, upsert_parties
from onecrew_chat.accounts.directory_schemas import CompanyRecord, DirectoryBody, MemberRecord, UserRecord
from onecrew_chat.logging import get_logger

log = get_logger(__name__)


class FirstOfEachKey:
    """The rows of one import (or one bulk request) by key: a key seen again is rejected, not applied twice.

    Applying the last one would make a second run of the same file change the row back and forth; rejecting
    the repeat keeps every run of the same input idempotent and says where the first one is.
    """

    def __init__(self, kind: DirectoryKind, position_word: str):
        self.kind, self.position_word = kind, position_word
        self.first: dict[tuple[str, ...], int] = {}

    def claim(self, record: DirectoryBody, position: int) -> Outcome | None:
        """None when the record's key is new here, else the rejection naming the first row with it."""
        first = self.first.setdefault(self.kind.key(record), position)
        if first == position:
            return None
        key = " and ".join(self.kind.key_fields)
        return rejected(f"repeats the {key} of {self.position_word} {first}; only the first one is imported")


async def write_records(
    session: AsyncSession, kind: DirectoryKind, records: Sequence[DirectoryBody], *, mirror_new: bool = True
) -> list[Outcome]:
    """Upsert valid records with distinct keys in a few bulk statements; one outcome per record, in order."""
    if not records:
        return []
    if kind.party is None:
        return await upsert_members(session, cast(Sequence[MemberRecord], records))
    parties = cast(Sequence[UserRecord | CompanyRecord], records)
    return await upsert_parties(session, kind.party, parties, mirror_new=mirror_new)


async def apply_rows(
    session: AsyncSession,
    kind: DirectoryKind,
    rows: Sequence[Any],
    positions: Sequence[int],
    keys: FirstOfEachKey,
    *,
    mirror_new: bool = True,
) -> list[Outcome]:
    """Validate each row as the PUT API does and write the valid, first-of-their-key ones; outcomes in row order.

    `mirror_new=False` (the import command) queues `identity.sync` only for identities Stream already holds."""
    checked: list[DirectoryBody | Outcome] = []
    for row, position in zip(rows, positions, strict=True):
        item = validate(kind, row)
        checked.append(item if isinstance(item, Outcome) else keys.claim(item, position) or item)
    valid = [item for item in checked if not isinstance(item, Outcome)]
    written = iter(await write_records(session, kind, valid, mirror_new=mirror_new))
    outcomes = [item if isinstance(item, Outcome) else next(written) for item in checked]
    counts = dict.fromkeys(STATUSES, 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
    log.debug(
        "directory_import.batch_applied",
        kind=kind.name,
        rows=len(rows),
        **counts,
        sync_queued=sum(outcome.sync_queued for outcome in outcomes),
    )
    return outcomes

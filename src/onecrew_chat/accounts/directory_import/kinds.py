"""The three kinds of directory row an import or a bulk PUT takes, and how one row is validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from onecrew_chat.accounts import directory
from onecrew_chat.accounts.directory_schemas import (
    CompanyRecord,
    DirectoryBody,
    MemberRecord,
    UserRecord,
    describe,
)

Status = Literal["created", "updated", "unchanged", "rejected"]
STATUSES: tuple[Status, ...] = ("created", "updated", "unchanged", "rejected")


@dataclass(frozen=True)
class DirectoryKind:
    """users, companies or members: the row model, its key and (for users and companies) the party it is."""

    name: str
    record: type[DirectoryBody]
    key_fields: tuple[str, ...]
    party: directory.Party | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every field of a row, key first, as files and SELECTs give them."""
        return self.key_fields + self.record.stored_fields()

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Fields a row must have (the others are optional)."""
        return tuple(name for name in self.columns if self.record.model_fields[name].is_required())

    def key(self, record: DirectoryBody) -> tuple[str, ...]:
        """The row's primary key (normalised uuids)."""
        return tuple(getattr(record, field) for field in self.key_fields)


USERS = DirectoryKind("users", UserRecord, ("id",), directory.USER)
COMPANIES = DirectoryKind("companies", CompanyRecord, ("id",), directory.COMPANY)
MEMBERS = DirectoryKind("members", MemberRecord, ("company_id", "user_id"))
KINDS = {kind.name: kind for kind in (USERS, COMPANIES, MEMBERS)}


@dataclass(frozen=True)
class Outcome:
    """What became of one row: its status, the reason when rejected, and whether a Stream sync was queued."""

    status: Status
    error: str | None = None
    sync_queued: bool = False


def rejected(error: str) -> Outcome:
    """A row that was not imported, with the reason."""
    return Outcome("rejected", error)


def validate(kind: DirectoryKind, data: Any) -> DirectoryBody | Outcome:
    """The row as its record model, or a rejected Outcome naming what is wrong (same rules as the PUT API)."""
    if not isinstance(data, dict):
        return rejected("must be a JSON object with " + ", ".join(kind.columns))
    try:
        return kind.record.model_validate(data)
    except ValidationError as exc:
        return rejected(describe(exc))

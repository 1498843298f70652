"""Bulk directory import: users, companies and memberships from files, OneCrew's database or the bulk API.

`kinds` says what a row of each kind is and validates it (with the internal API's own schemas),
`writes` writes a batch of valid rows with a few bulk statements, `batch` validates and dispatches a
batch, `files` and `sql_source` read rows, and `runner` drives a whole import, one transaction per batch, so an
interrupted run resumes by running it again. What every source yields (`SourceRow`, `RowSource`), the errors that
stop one and the import's memory bounds are here, where all of them and the command line read them without loading
the rest (the command line builds its options from the bounds when it starts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

# Bounds on what an import holds in memory (the command's --max-line-bytes and --max-rejections).
DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB: a directory row is a few hundred bytes
DEFAULT_MAX_REJECTIONS = 1000  # rejected rows listed in the summary; all of them are counted


@dataclass(frozen=True)
class SourceRow:
    """One row read from a source: where it was (line or row number) and its fields, or why it is unreadable."""

    position: int
    data: Any = None
    error: str | None = None


class SourceError(Exception):
    """The source cannot be read any further (a truncated archive, a lost connection): the import stops there."""


class SourceRefused(SourceError):
    """The source cannot be read at all (missing file, unknown format, a CSV header without a needed column)."""


class RowSource(Protocol):
    """A file, standard input or a SELECT, read in chunks."""

    name: str
    position_word: str  # "line" for files, "row" for SELECT results

    async def total(self) -> int | None:
        """How many rows to expect (for the progress bar), None when unknown."""
        ...

    def chunks(self, size: int) -> AsyncIterator[list[SourceRow]]:
        """Rows in chunks of at most `size`; rows read before a SourceError come first, then the error."""
        ...

    async def close(self) -> None:
        """Release what the source holds (a database engine)."""
        ...

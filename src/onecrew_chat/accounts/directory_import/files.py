"""Rows from a JSON Lines or CSV file, gzipped or not, or from standard input (`-`).

Memory stays bounded whatever the file holds: a line longer than `max_line_bytes` is never held whole (it is read
past in small pieces and its row rejected with its line number), a CSV record is held to the same limit, and a
chunk of rows ends early once it has read `CHUNK_BYTES`.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

from onecrew_chat.accounts.directory_import import DEFAULT_MAX_LINE_BYTES, SourceError, SourceRefused, SourceRow
from onecrew_chat.accounts.directory_import.kinds import DirectoryKind

STDIN = "-"
FORMATS = ("jsonl", "csv")
CHUNK_BYTES = 8 << 20  # a chunk of rows ends early once it has read this much
_DISCARD_BYTES = 64 << 10  # a line past the limit is read past this much at a time
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (OSError, EOFError, zlib.error)
Line = tuple[int, str, str | None]  # number, text with its line ending, why the line is unreadable (None: readable)


def format_of(path: str, given: str | None) -> str:
    """`jsonl` or `csv`: as given, else from the suffix (`.jsonl`, `.ndjson`, `.json`, `.csv`, each maybe `.gz`)."""
    if given:
        return given
    if path == STDIN:
        raise SourceRefused("standard input has no suffix: say --format jsonl or --format csv")
    name = Path(path).name.lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise SourceRefused(f"cannot tell the format of {path!r} from its suffix: name it .jsonl or .csv (.gz allowed)")


def _open(path: str) -> io.BufferedIOBase:
    """The file's bytes, decompressed when it is gzipped (by suffix, or by its magic bytes on standard input)."""
    if path == STDIN:
        raw = cast(io.BufferedReader, sys.stdin.buffer)  # binary standard input is buffered
        return gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == _GZIP_MAGIC else raw
    gzipped = path.lower().endswith(".gz")
    try:
        if gzipped:
            with open(path, "rb") as head:
                start = head.read(2)
            if start and start != _GZIP_MAGIC:
                raise SourceRefused(
                    f"{path} is named .gz but is not gzip-compressed: decompress it, or drop the .gz suffix"
                )
        return gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceRefused(f"cannot open {path}: {exc.strerror or exc}") from None


def _size_words(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20:,} MiB"
    return f"{limit >> 10:,} KiB" if limit % (1 << 10) == 0 else f"{limit:,} bytes"


def too_long(limit: int) -> str:
    """The rejection of a line (or CSV record) past the limit."""
    return f"is longer than {_size_words(limit)} (the --max-line-bytes limit); it was not read"


class _Lines:
    """The lines of a byte stream, numbered from 1, none held longer than `limit` bytes; counts the bytes read.

    A line past the limit is read past in small pieces and given as an empty line with its rejection. The first
    line with any text must be UTF-8 (UTF-16, or a binary file, is refused rather than rejected line by line).
    """

    def __init__(self, stream: io.BufferedIOBase, name: str, limit: int):
        self.stream, self.name, self.limit = stream, name, limit
        self.bytes_read = 0

    def _read_past(self) -> None:
        while True:
            piece = self.stream.readline(_DISCARD_BYTES)
            self.bytes_read += len(piece)
            if not piece or piece.endswith(b"\n"):
                return

    def _first_text(self, number: int, raw: bytes) -> None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if b"\x00" not in raw:
                return
        raise SourceRefused(
            f"{self.name} is not UTF-8 text (line {number} is not UTF-8: UTF-16, Latin-1 or a binary file?); "
            "save it as UTF-8"
        )

    def __iter__(self) -> Iterator[Line]:
        number, text_seen = 0, False
        try:
            while raw := self.stream.readline(self.limit + 1):
                number += 1
                self.bytes_read += len(raw)
                if len(raw) > self.limit and not raw.endswith(b"\n"):
                    self._read_past()
                    yield number, "\n", too_long(self.limit)
                    continue
                if not text_seen and raw.strip():
                    self._first_text(number, raw.removeprefix(b"\xef\xbb\xbf"))
                    text_seen = True
                try:
                    yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8"), None
                except UnicodeDecodeError:
                    yield number, raw.decode("utf-8", errors="replace"), "is not valid UTF-8"
        except _READ_ERRORS as exc:
            raise SourceError(f"the file could not be read to its end ({type(exc).__name__}: {exc})") from None


def _jsonl_rows(lines: Iterator[Line]) -> Iterator[SourceRow]:
    for number, text, error in lines:
        if error is not None:
            yield SourceRow(number, error=error)
            continue
        if not text.strip():
            continue
        try:
            yield SourceRow(number, json.loads(text.rstrip("\r\n")))
        except json.JSONDecodeError as exc:
            yield SourceRow(number, error=f"is not valid JSON ({exc.msg} at column {exc.colno})")
        except (ValueError, RecursionError):
            yield SourceRow(number, error="is not valid JSON")


class _RecordTooLong(Exception):
    """A CSV record (a quoted field across lines) past the line limit: the reader cannot find where it ends."""


def _csv_rows(lines: Iterator[Line], kind: DirectoryKind, limit: int) -> Iterator[SourceRow]:
    at, record_chars = [0], [0]
    bad: dict[int, str] = {}  # the unreadable lines of the record being read

    def texts() -> Iterator[str]:
        for number, text, error in lines:
            at[0] = number
            record_chars[0] += len(text)
            if error is not None:
                bad[number] = error
            if record_chars[0] > limit:
                raise _RecordTooLong
            yield text

    reader = csv.reader(texts())

    def record(start: int) -> tuple[list[str], str | None]:
        """The next record's fields and why it is unreadable (its first bad line), or StopIteration."""
        record_chars[0] = 0
        bad.clear()
        try:
            fields = next(reader)
        except _RecordTooLong:
            raise SourceError(f"line {start}: a CSV record {too_long(limit)} (a quote left open?)") from None
        return fields, bad[min(bad)] if bad else None

    header: list[str] = []
    while not any(header):  # blank lines before the header are skipped
        start = at[0] + 1
        try:
            fields, error = record(start)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SourceRefused(f"the CSV header (line {start}) is not valid CSV ({exc})") from None
        if error is not None:
            raise SourceRefused(f"the CSV header (line {start}) {error}")
        header = [name.strip() for name in fields]
    missing = [name for name in kind.required_columns if name not in header]
    if missing:
        raise SourceRefused(f"the CSV header has no column {', '.join(missing)} (it has: {', '.join(header)})")
    while True:
        start = at[0] + 1
        try:
            fields, error = record(start)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceRow(start, error=f"is not valid CSV ({exc})")
            continue
        if error is not None:
            yield SourceRow(start, error=error)
        elif not any(field.strip() for field in fields):
            continue
        elif len(fields) != len(header):
            yield SourceRow(start, error=f"has {len(fields)} fields; the header has {len(header)}")
        else:
            yield SourceRow(start, dict(zip(header, fields, strict=True)))


class FileSource:
    """A JSONL or CSV file (or standard input), read in a worker thread a chunk at a time."""

    position_word = "line"

    def __init__(
        self, path: str, kind: DirectoryKind, fmt: str | None = None, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ):
        self.path, self.kind, self.max_line_bytes = path, kind, max_line_bytes
        self.format = format_of(path, fmt)
        self.name = "standard input" if path == STDIN else path

    def _count(self) -> int | None:
        if self.path == STDIN:
            return None
        with _open(self.path) as stream:
            count, last = 0, b"\n"
            try:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    count, last = count + block.count(b"\n"), block[-1:]
            except _READ_ERRORS:
                pass  # the import itself reports where the file ends
        count += last != b"\n"
        return max(0, count - 1) if self.format == "csv" else count

    async def total(self) -> int | None:
        """About how many rows the file has (its line count), for the progress bar."""
        return await asyncio.to_thread(self._count)

    async def chunks(self, size: int) -> AsyncIterator[list[SourceRow]]:
        """Rows in chunks of `size` (fewer once a chunk has read CHUNK_BYTES); what was read before a read error
        comes first, then the SourceError."""
        stream = await asyncio.to_thread(_open, self.path)
        lines = _Lines(stream, self.name, self.max_line_bytes)
        limit = self.max_line_bytes
        rows = _csv_rows(iter(lines), self.kind, limit) if self.format == "csv" else _jsonl_rows(iter(lines))
        failure: list[SourceError] = []

        def take() -> list[SourceRow]:
            chunk: list[SourceRow] = []
            started = lines.bytes_read
            try:
                while len(chunk) < size and lines.bytes_read - started < CHUNK_BYTES:
                    chunk.append(next(rows))
            except StopIteration:
                pass
            except SourceError as exc:
                failure.append(exc)
            return chunk

        try:
            while not failure:
                chunk = await asyncio.to_thread(take)
                if chunk:
                    yield chunk
                elif not failure:
                    return
            raise failure[0]
        finally:
            if self.path != STDIN:
                stream.close()

    async def close(self) -> None:
        """Nothing to release: `chunks` closes the file when it ends."""

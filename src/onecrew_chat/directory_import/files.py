"""Rows from a JSON Lines or CSV file, gzipped or not, or from standard input (`-`)."""

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

from onecrew_chat.directory_import.kinds import DirectoryKind
from onecrew_chat.directory_import.rows import SourceError, SourceRefused, SourceRow

STDIN = "-"
FORMATS = ("jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (OSError, EOFError, zlib.error)
Line = tuple[int, str, bool]  # number, text with its line ending, whether it was valid UTF-8


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
    try:
        return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceRefused(f"cannot open {path}: {exc.strerror or exc}") from None


def _lines(stream: io.BufferedIOBase) -> Iterator[Line]:
    try:
        for number, raw in enumerate(stream, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8"), True
            except UnicodeDecodeError:
                yield number, raw.decode("utf-8", errors="replace"), False
    except _READ_ERRORS as exc:
        raise SourceError(f"the file could not be read to its end ({type(exc).__name__}: {exc})") from None


def _jsonl_rows(lines: Iterator[Line]) -> Iterator[SourceRow]:
    for number, text, utf8 in lines:
        if not text.strip():
            continue
        if not utf8:
            yield SourceRow(number, error="is not valid UTF-8")
            continue
        try:
            yield SourceRow(number, json.loads(text.rstrip("\r\n")))
        except json.JSONDecodeError as exc:
            yield SourceRow(number, error=f"is not valid JSON ({exc.msg} at column {exc.colno})")
        except (ValueError, RecursionError):
            yield SourceRow(number, error="is not valid JSON")


def _csv_rows(lines: Iterator[Line], kind: DirectoryKind) -> Iterator[SourceRow]:
    at, not_utf8 = [0], set()

    def texts() -> Iterator[str]:
        for number, text, utf8 in lines:
            at[0] = number
            if not utf8:
                not_utf8.add(number)
            yield text

    reader = csv.reader(texts())
    header = [name.strip() for name in next(reader, [])]
    if not header:
        return
    missing = [name for name in kind.required_columns if name not in header]
    if missing:
        raise SourceRefused(f"the CSV header has no column {', '.join(missing)} (it has: {', '.join(header)})")
    while True:
        start = at[0] + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceRow(start, error=f"is not valid CSV ({exc})")
            continue
        if not any(field.strip() for field in fields):
            continue
        if not_utf8.intersection(range(start, at[0] + 1)):
            yield SourceRow(start, error="is not valid UTF-8")
        elif len(fields) != len(header):
            yield SourceRow(start, error=f"has {len(fields)} fields; the header has {len(header)}")
        else:
            yield SourceRow(start, dict(zip(header, fields, strict=True)))


class FileSource:
    """A JSONL or CSV file (or standard input), read in a worker thread a chunk at a time."""

    position_word = "line"

    def __init__(self, path: str, kind: DirectoryKind, fmt: str | None = None):
        self.path, self.kind = path, kind
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
        """Rows in chunks of `size`; what was read before a read error comes first, then the SourceError."""
        stream = await asyncio.to_thread(_open, self.path)
        lines = _lines(stream)
        rows = _csv_rows(lines, self.kind) if self.format == "csv" else _jsonl_rows(lines)
        failure: list[SourceError] = []

        def take() -> list[SourceRow]:
            chunk: list[SourceRow] = []
            try:
                while len(chunk) < size:
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

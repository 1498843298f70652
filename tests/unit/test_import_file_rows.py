"""Reading import files: line numbers, CSV quirks (BOM, CRLF, quoted newlines), bad bytes, suffixes, memory bounds."""

from __future__ import annotations

import gzip
import re
import tracemalloc

import pytest

from onecrew_chat.accounts.directory_import import DEFAULT_MAX_LINE_BYTES, SourceError, SourceRefused
from onecrew_chat.accounts.directory_import.files import CHUNK_BYTES, FileSource, format_of
from onecrew_chat.accounts.directory_import.kinds import USERS

ID = "3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15"


async def read(path, size: int = 1000) -> list:
    return [
        (row.position, row.data, row.error)
        async for chunk in FileSource(str(path), USERS).chunks(size)
        for row in chunk
    ]


async def test_csv_with_bom_crlf_quoted_newlines_and_bad_rows(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,name,category\r\n"
        + f'{ID},"Amr\r\nHassan",crew\r\n'.encode()
        + b"\r\n"
        + f"{ID},Mona\r\n".encode()
        + f"{ID},Caf\xe9,crew\r\n".encode("latin-1")
        + f"{ID},Lolo,talent\r\n".encode()
    )
    assert await read(path) == [
        (2, {"id": ID, "name": "Amr\r\nHassan", "category": "crew"}, None),
        (5, None, "has 2 fields; the header has 3"),
        (6, None, "is not valid UTF-8"),
        (7, {"id": ID, "name": "Lolo", "category": "talent"}, None),
    ]
    assert await FileSource(str(path), USERS).total() == 6


async def test_jsonl_in_gzip_in_small_chunks_keeps_line_numbers(tmp_path):
    path = tmp_path / "users.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n\n{"id": 2}\n[3]\n{"id": \n'))
    chunks = [[row.position for row in chunk] async for chunk in FileSource(str(path), USERS).chunks(2)]
    assert chunks == [[1, 3], [4, 5]]
    rows = await read(path)
    assert rows[-1] == (5, None, "is not valid JSON (Expecting value at column 8)")


async def test_a_truncated_archive_yields_what_it_read_then_stops(tmp_path):
    whole = gzip.compress(b"".join(b'{"id": %d}\n' % n for n in range(5000)))
    path = tmp_path / "users.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    seen = []
    with pytest.raises(Exception, match="could not be read to its end") as stopped:
        async for chunk in FileSource(str(path), USERS).chunks(1000):
            seen += [row.position for row in chunk]
    assert not isinstance(stopped.value, SourceRefused)
    assert seen and seen == list(range(1, len(seen) + 1))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("users.jsonl", "jsonl"),
        ("USERS.CSV.GZ", "csv"),
        ("x.json.gz", "jsonl"),
        ("x.ndjson", "jsonl"),
    ],
)
def test_format_from_suffix(name, expected):
    assert format_of(name, None) == expected
    assert format_of(name, "csv") == "csv"


def test_unknown_suffix_and_standard_input_without_format_are_refused():
    with pytest.raises(SourceRefused, match="from its suffix"):
        format_of("users.txt", None)
    with pytest.raises(SourceRefused, match="--format"):
        format_of("-", None)


def write_gzip(path, *parts: bytes, repeat: dict[int, int] | None = None) -> None:
    """A gzip file of `parts`, part i written `repeat[i]` times (a long line without holding it here)."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        for index, part in enumerate(parts):
            for _ in range((repeat or {}).get(index, 1)):
                out.write(part)


async def peak_while(consume) -> int:
    """The most memory Python held (tracemalloc) while `consume()` ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        await consume()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def test_a_line_past_the_limit_is_rejected_by_number_without_being_held(tmp_path):
    """24 MiB on one line (a few KB gzipped) is read past in pieces: Python never holds more than a few MiB."""
    path = tmp_path / "users.jsonl.gz"
    good = f'{{"id": "{ID}", "name": "Amr"}}\n'.encode()
    write_gzip(path, good, b'{"id": "x", "name": "', b"x" * (1 << 20), b'"}\n', good, repeat={2: 24})
    rows: list = []

    async def consume() -> None:
        rows.extend(await read(path))

    peak = await peak_while(consume)
    assert [(position, error) for position, _, error in rows] == [
        (1, None),
        (2, "is longer than 1 MiB (the --max-line-bytes limit); it was not read"),
        (3, None),
    ]
    assert peak < 6 * DEFAULT_MAX_LINE_BYTES, f"held {peak:,} bytes reading a 24 MiB line"


async def test_a_chunk_of_long_lines_ends_early_so_a_chunk_holds_megabytes_not_a_gigabyte(tmp_path):
    """1,000 rows of almost 1 MiB each would be a gigabyte in one chunk: a chunk stops after CHUNK_BYTES."""
    path = tmp_path / "users.jsonl.gz"
    line = b'{"id": "x", "name": "' + b"x" * (900 << 10) + b'"}\n'
    write_gzip(path, line, repeat={0: 80})
    sizes: list[int] = []

    async def consume() -> None:
        async for chunk in FileSource(str(path), USERS).chunks(1000):
            sizes.append(len(chunk))

    peak = await peak_while(consume)
    assert sum(sizes) == 80 and len(sizes) > 1
    assert peak < 4 * CHUNK_BYTES, f"held {peak:,} bytes for 72 MiB of rows"  # two chunks at most, and a line


async def test_csv_lines_and_records_past_the_limit(tmp_path):
    """A long CSV line is one rejected row; a quoted field left open is stopped at the limit, not read to the end."""
    limit = 4096
    path = tmp_path / "users.csv"
    path.write_bytes(
        b"id,name\n" + f"{ID},Amr\n".encode() + b"x" * (limit + 1) + b"\n" + f'{ID},"Mona\nHassan"\n'.encode()
    )
    source = FileSource(str(path), USERS, max_line_bytes=limit)
    rows = [(row.position, row.error) async for chunk in source.chunks(1000) for row in chunk]
    assert rows == [(2, None), (3, "is longer than 4 KiB (the --max-line-bytes limit); it was not read"), (4, None)]

    path.write_bytes(b"id,name\n" + f'{ID},"Amr\n'.encode() + b"a,b\n" * limit)
    seen = []
    with pytest.raises(SourceError, match="line 2: a CSV record is longer than 4 KiB") as stopped:
        async for chunk in FileSource(str(path), USERS, max_line_bytes=limit).chunks(1000):
            seen += chunk
    assert seen == [] and not isinstance(stopped.value, SourceRefused)

    path.write_bytes(b"id," + b"n" * limit + b"\n" + f"{ID},Amr\n".encode())
    with pytest.raises(SourceRefused, match=r"the CSV header \(line 1\) is longer than 4 KiB"):
        await read_limited(path, limit)


async def read_limited(path, limit: int) -> list:
    return [row async for chunk in FileSource(str(path), USERS, max_line_bytes=limit).chunks(1000) for row in chunk]


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("users.jsonl.gz", b'{"id": 1}\n', "users.jsonl.gz is named .gz but is not gzip-compressed"),
        ("users.jsonl", '{"id": 1}\n'.encode("utf-16"), "is not UTF-8 text (line 1"),
        ("users.csv", "id,name\n".encode("utf-16-le"), "is not UTF-8 text (line 1"),
        ("users.jsonl.gz", gzip.compress(b'{"id": 1}\n' * 1000)[:30], "could not be read to its end"),
    ],
    ids=["not-gzip", "utf-16", "utf-16-le-no-bom", "broken-gzip"],
)
async def test_files_that_cannot_be_read_at_all_are_refused(tmp_path, name, data, words):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceError, match=re.escape(words)):
        await read(path)


async def test_latin_1_after_utf_8_lines_rejects_those_lines_only(tmp_path):
    path = tmp_path / "users.jsonl"
    path.write_bytes(f'{{"id": "{ID}"}}\n'.encode() + '{"name": "Café"}\n'.encode("latin-1"))
    assert [(position, error) for position, _, error in await read(path)] == [(1, None), (2, "is not valid UTF-8")]


async def test_blank_lines_before_a_csv_header_are_skipped(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(b"\n  \nid,name\n" + f"{ID},Amr\n".encode())
    assert await read(path) == [(4, {"id": ID, "name": "Amr"}, None)]

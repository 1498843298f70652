"""Reading import files: line numbers, CSV quirks (BOM, CRLF, quoted newlines), bad bytes, suffixes."""

from __future__ import annotations

import gzip

import pytest

from onecrew_chat.directory_import.files import FileSource, format_of
from onecrew_chat.directory_import.kinds import USERS
from onecrew_chat.directory_import.rows import SourceRefused

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

"""The bench's load generator: HTTP/1.1 over keep-alive connections, requests encoded before the clock starts.

The bench client runs on the same cores as the API, the emulator and PostgreSQL, so what it costs is taken from
what it measures. httpx cost 1.3 ms of CPU per request at 16 connections and 4 to 9 ms at 64 (its pool looks at
every connection on every request), more than the API's own 0.3 to 2 ms: the client, not the API, set the pace,
and a second API process had no core to run on. This client writes prepared bytes and reads one answer (status
line, Content-Length or chunked body) per request, for a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class Closed(Exception):
    """The server closed the connection before the whole answer came."""


# The headers httpx sends with every request (and an app's HTTP stack sends much the same): the server parses them
# all, so a request without them would cost the API less than a real one.
DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": "onecrew-bench",
}


def encode(method: str, path: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """One request as it goes on the wire."""
    fields = {**DEFAULT_HEADERS, **headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in fields.items())]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def json_body(value: object) -> bytes:
    """A JSON request body, encoded the way httpx encodes one."""
    return json.dumps(value).encode()


class Connection:
    """One keep-alive connection: a request at a time, its answer read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        """A new connection to the host and port of `base_url`."""
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of the answer to `request`; Closed when the server closed the connection first."""
        self._writer.write(request)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise Closed(str(exc) or type(exc).__name__) from None
        status = int(head[9:12])
        fields = head.lower()
        start = fields.find(b"\r\ncontent-length:")
        try:
            if start >= 0:
                end = fields.index(b"\r\n", start + 2)
                return status, await self._reader.readexactly(int(fields[start + 17 : end]))
            if b"\r\ntransfer-encoding: chunked" in fields:
                return status, await self._chunked()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise Closed(str(exc) or type(exc).__name__) from None
        raise Closed(f"answer {status} with neither Content-Length nor chunked body")

    async def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return bytes(body)
            body += chunk[:-2]

    async def close(self) -> None:
        """Close the connection (and wait until it is)."""
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass

"""Stream's API as one prepared origin: every request sent straight to our connection pool, no URL parsed per call.

httpx's client, for each call, parses the URL it is given, parses it again to join it to the base URL and merge
the query parameters, builds its Request (parsing once more), walks its auth and redirect machinery and reads
cookies back through urllib: about a third of a channel call's CPU. The base URL, the default headers (the SDK's
auth and client headers), the default query (the API key) and the timeouts never change after the SDK client is
built, so they are taken from it once, and a call only joins its quoted path to them. What goes on the wire is
what httpx would send for the same call, byte for byte (tests/unit/test_stream_endpoint.py compares them), and
transport failures are httpx's own exceptions, so they are classified as before. Cookies are neither kept nor
sent: Stream's REST API authenticates every call by its headers.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpcore
import httpx
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions

from onecrew_chat.stream.pool import StackPool


@dataclass(frozen=True)
class Endpoint:
    """Stream's origin, headers, query and timeouts as the SDK's client holds them, ready to be sent on the pool."""

    pool: StackPool
    scheme: bytes
    host: bytes
    port: int | None
    prefix: str  # the base URL's path, without its final slash
    query: str  # the client's own query parameters (the API key), already encoded
    headers: tuple[tuple[bytes, bytes], ...]  # Host first, then the client's headers, as httpx orders them
    extensions: dict[str, object]

    @classmethod
    def of(cls, client: httpx.AsyncClient, pool: StackPool) -> Endpoint:
        """The SDK client's fixed parts (base URL, headers, params, timeouts), read once."""
        base = client.base_url
        netloc = base.netloc
        return cls(
            pool=pool,
            scheme=base.raw_scheme,
            host=base.raw_host,
            port=base.port,
            prefix=base.raw_path.decode("ascii").rstrip("/"),
            query=str(client.params),
            headers=((b"Host", netloc), *client.headers.raw),
            extensions={"timeout": client.timeout.as_dict()},
        )

    def target(self, path: str, query: dict[str, str] | None = None) -> str:
        """The request target (path and query) httpx would send for `path` (already quoted) and `query`."""
        params = self.query
        if query:
            extra = str(httpx.QueryParams(query))
            params = f"{params}&{extra}" if params else extra
        return f"{self.prefix}{path}?{params}" if params else f"{self.prefix}{path}"

    def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], content: bytes | None
    ) -> httpcore.Request:
        """The request for the pool: the fixed headers, then the call's own, then its Content-Length."""
        raw = [*self.headers, *headers]
        if content is not None:
            raw.append((b"Content-Length", str(len(content)).encode("ascii")))
        return httpcore.Request(
            method.encode("ascii"),
            httpcore.URL(scheme=self.scheme, host=self.host, port=self.port, target=target.encode("ascii")),
            headers=raw,
            content=content or b"",
            extensions=self.extensions,
        )

    def url(self, target: str) -> str:
        """The full URL of a target (for an error answer's request only: building it parses it)."""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme.decode()}://{self.host.decode()}{port}{target}"

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[bytes, bytes]],
        content: bytes | None = None,
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one call and read its whole answer (decoded as httpx decodes it); httpx's exceptions on failure."""
        target = self.target(path, query)
        with map_httpcore_exceptions():
            answer = await self.pool.handle_async_request(self.request(method, target, headers, content))
        response = httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=AsyncResponseStream(answer.stream),  # type: ignore[arg-type]  # httpcore's body, as httpx wraps it
            extensions=answer.extensions,
        )
        try:
            await response.aread()
        finally:
            await response.aclose()  # gives the connection back to the pool
        if response.status_code >= 399:
            response.request = httpx.Request(method, self.url(target))
        return response

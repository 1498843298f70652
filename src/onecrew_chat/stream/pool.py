"""The connection pool to Stream: what each call costs stays the same however many calls are in flight.

httpcore's own pool, on every request and on every response it closes, walks every connection it holds: an
expiry check with a `poll` of the socket for each idle one and, for each idle one, a count of all of them again
(quadratic), then a scan of the queued requests against every connection. A pool grows to the most calls that
were ever in flight at once and keeps them alive, so at 64 concurrent creates that walk was about half of a
create's CPU. Here idle connections wait on a stack per origin: a call takes the most recently used one (checking
that one alone: keep-alive expiry and a server that closed it) or opens a new one, and gives it back when its
answer is read. Connections that stop being needed sink to the bottom of the stack and are closed once their
keep-alive expires, so the pool follows the calls in flight. A semaphore caps the calls in flight (and so the
connections); a call over the cap waits, in order, for at most the pool timeout. HTTP/1.1 only: the emulator
serves HTTP/1.1, httpx's HTTP/2 frames every call in pure Python (the h2 package, not installed), and one
multiplexed connection would put every call behind one TCP window.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator

import httpcore
import httpx
from httpcore._async.interfaces import AsyncConnectionInterface

_SWEEP_EVERY_S = 1.0  # how often given-back connections look at the bottom of their stack for expired ones

OriginKey = tuple[bytes, bytes, int]


class StackPool(httpcore.AsyncConnectionPool):
    """An httpcore pool whose cost per request does not depend on how many connections it holds."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[OriginKey, deque[AsyncConnectionInterface]] = {}
        self._busy: dict[AsyncConnectionInterface, OriginKey] = {}  # connections carrying a call, by origin
        self._swept_at = time.monotonic()

    @property
    def connections(self) -> list[AsyncConnectionInterface]:
        """Every connection the pool holds: those carrying a call, then the idle ones."""
        return [*self._busy, *(conn for stack in self._idle.values() for conn in stack)]

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send on an idle connection to the request's origin (or a new one) once a slot is free."""
        if request.url.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"Request URL has an unsupported protocol '{request.url.scheme!r}'.")
        if self._slots.locked():  # all slots taken: wait in line, at most the pool timeout
            try:
                async with asyncio.timeout((request.extensions.get("timeout") or {}).get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpcore.PoolTimeout("no Stream connection came free within the pool timeout") from None
        else:
            await self._slots.acquire()
        try:
            while True:
                connection = await self._checkout(request.url.origin)
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    self._busy.pop(connection, None)  # it cannot take this request after all: drop it, take another
                    continue
                except BaseException:
                    self._checkin(connection)
                    raise
                break
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_GiveBack(response.stream, self, connection),
            extensions=response.extensions,
        )

    async def _checkout(self, origin: httpcore.Origin) -> AsyncConnectionInterface:
        """The most recently used idle connection to `origin` that is still good, else a new one."""
        key = (origin.scheme, origin.host, origin.port)
        stack = self._idle.get(key)
        while stack:
            connection = stack.pop()
            if connection.is_closed():
                continue
            if connection.has_expired() or not connection.is_available():
                await _close(connection)
                continue
            self._busy[connection] = key
            return connection
        connection = self.create_connection(origin)
        self._busy[connection] = key
        return connection

    def _checkin(self, connection: AsyncConnectionInterface) -> None:
        """A connection whose call is over: back on top of its stack when it can carry another call."""
        key = self._busy.pop(connection, None)
        if key is not None and connection.is_idle() and not connection.is_closed():
            self._idle.setdefault(key, deque()).append(connection)

    def _expired(self) -> list[AsyncConnectionInterface]:
        """At most once a second: the connections at the bottom of each stack (the least recently used) whose
        keep-alive expired or whose server closed them, taken out of the pool for closing."""
        now = time.monotonic()
        if now - self._swept_at < _SWEEP_EVERY_S:
            return []
        self._swept_at = now
        expired = []
        for stack in self._idle.values():
            while stack and (stack[0].is_closed() or stack[0].has_expired()):
                expired.append(stack.popleft())
        return expired

    async def aclose(self) -> None:
        """Close every connection (calls still in flight fail)."""
        connections = self.connections
        self._idle.clear()
        self._busy.clear()
        for connection in connections:
            await _close(connection)


class _GiveBack:
    """An answer's body that gives its connection and slot back to the pool once it is read or closed."""

    def __init__(self, stream: AsyncIterable[bytes], pool: StackPool, connection: AsyncConnectionInterface) -> None:
        self._stream = stream
        self._pool = pool
        self._connection = connection
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._pool._checkin(self._connection)
            self._pool._slots.release()
        for connection in self._pool._expired():
            await _close(connection)


async def _close(connection: AsyncConnectionInterface) -> None:
    try:
        await connection.aclose()
    except Exception:  # a connection that fails to close is gone all the same
        return


class StackTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (its request and exception mapping, its default TLS verification) over a StackPool."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        super().__init__()
        verified = self._pool._ssl_context  # httpx's default context: certifi's roots, SSL_CERT_FILE honoured
        self._stack = StackPool(
            max_connections=max_connections, keepalive_expiry=keepalive_expiry, ssl_context=verified
        )
        self._pool = self._stack

    @property
    def pool(self) -> StackPool:
        """The pool the transport sends on (stream/endpoint.py sends on it directly)."""
        return self._stack

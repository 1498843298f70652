"""Stream's client connection: the `/connect` WebSocket, who watches which channel, event fan-out.

A client SDK dials `/connect?json=...&api_key=...&authorization=<user token>&stream-auth-type=jwt`.
The first frame it gets is a `health.check` event carrying `connection_id` and `me` (the connected
user); after that it gets the events of the channels it watches and its own notifications, and a
`health.check` answer to each of its own. REST calls that carry `?connection_id=` (with
`"watch": true`) make that connection a watcher of the channels they return.

Handlers run on the server's event loop; they hand events to a connection's queue and never wait.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .clock import now_ns, rfc3339
from .errors import AUTHENTICATION, INPUT, StreamError, envelope
from .handlers import sessions

if TYPE_CHECKING:
    from .emulator import Emulator

# What the error envelope of a refused connection names as its operation.
CONNECT = "Connect"
# How often the server says it is alive on an otherwise quiet connection (Stream: about 30 s).
HEALTH_CHECK_INTERVAL_S = 30.0
# Close codes: 1000 after an error frame (the SDK then gives up: the token or payload is bad),
# 1012 when the emulator drops connections on purpose (the SDK reconnects, as after a restart).
CLOSE_REFUSED = 1000
CLOSE_RESTART = 1012
_CLOSE = object()


class Connection:
    """One open WebSocket of one user."""

    __slots__ = ("id", "user_id", "watching", "_queue", "_loop")

    def __init__(self, user_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.id = str(uuid.uuid4())
        self.user_id = user_id
        self.watching: set[str] = set()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = loop

    def send(self, event: dict) -> None:
        """Queue one event for this connection (safe from any thread)."""
        self._put(json.dumps(event))

    def close(self) -> None:
        """Ask the connection to close with CLOSE_RESTART."""
        self._put(_CLOSE)

    def _put(self, item: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._queue.put_nowait(item)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def next(self, timeout: float) -> Any:
        """The next queued frame (str or _CLOSE), or None after `timeout` seconds of silence."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None


class Hub:
    """The open connections, by user and by watched channel."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._watchers: dict[str, set[str]] = {}

    # --- connections -------------------------------------------------------------------

    def open(self, user_id: str, loop: asyncio.AbstractEventLoop) -> tuple[Connection, bool]:
        """A new connection, and whether its user just came online."""
        connection = Connection(user_id, loop)
        self.connections[connection.id] = connection
        ids = self._by_user.setdefault(user_id, set())
        ids.add(connection.id)
        return connection, len(ids) == 1

    def close(self, connection: Connection) -> tuple[list[str], bool]:
        """Forget a connection: the channels it watched, and whether its user went offline."""
        if self.connections.pop(connection.id, None) is None:
            return [], False
        watched = sorted(connection.watching)
        for cid in watched:
            self._unwatch(cid, connection.id)
        ids = self._by_user.get(connection.user_id, set())
        ids.discard(connection.id)
        if ids:
            return watched, False
        self._by_user.pop(connection.user_id, None)
        return watched, True

    def drop(self, user_id: str | None = None) -> int:
        """Close every connection (of one user, if given) as a server restart would; how many."""
        dropped = [c for c in list(self.connections.values()) if user_id is None or c.user_id == user_id]
        for connection in dropped:
            connection.close()
        return len(dropped)

    def online(self, user_id: str) -> bool:
        """Whether the user has an open connection."""
        return bool(self._by_user.get(user_id))

    def connection_of(self, connection_id: str, user_id: str) -> Connection | None:
        """The user's own open connection with this id, or None."""
        connection = self.connections.get(connection_id)
        return connection if connection is not None and connection.user_id == user_id else None

    # --- watching ----------------------------------------------------------------------

    def watch(self, connection: Connection, cid: str) -> bool:
        """Make the connection a watcher of the channel; True if it was not one yet."""
        watchers = self._watchers.setdefault(cid, set())
        if connection.id in watchers:
            return False
        watchers.add(connection.id)
        connection.watching.add(cid)
        return True

    def unwatch(self, connection: Connection, cid: str) -> bool:
        """Stop watching; True if it was watching."""
        if cid not in connection.watching:
            return False
        connection.watching.discard(cid)
        self._unwatch(cid, connection.id)
        return True

    def _unwatch(self, cid: str, connection_id: str) -> None:
        watchers = self._watchers.get(cid)
        if watchers is not None:
            watchers.discard(connection_id)
            if not watchers:
                del self._watchers[cid]

    def watcher_ids(self, cid: str) -> list[str]:
        """The users watching the channel, each once, in a stable order."""
        ids = self._watchers.get(cid, ())
        return sorted({self.connections[i].user_id for i in ids if i in self.connections})

    def forget_channel(self, cid: str) -> None:
        """The channel is gone: nobody watches it any more."""
        for connection_id in self._watchers.pop(cid, set()):
            connection = self.connections.get(connection_id)
            if connection is not None:
                connection.watching.discard(cid)

    # --- delivery ----------------------------------------------------------------------

    def listening(self, cid: str | None = None, user_ids: Iterable[str] = ()) -> bool:
        """Whether anyone would receive an event for this channel or these users."""
        if cid is not None and self._watchers.get(cid):
            return True
        return any(self._by_user.get(u) for u in user_ids)

    def to_watchers(self, cid: str, event: dict) -> set[str]:
        """Send to every connection watching the channel; the users reached."""
        reached = set()
        for connection_id in sorted(self._watchers.get(cid, ())):
            connection = self.connections.get(connection_id)
            if connection is not None:
                connection.send(event)
                reached.add(connection.user_id)
        return reached

    def to_watchers_of(self, cids: Iterable[str], event: dict) -> None:
        """Send once to each connection watching any of the channels."""
        ids: set[str] = set()
        for cid in cids:
            ids.update(self._watchers.get(cid, ()))
        for connection_id in sorted(ids):
            self.connections[connection_id].send(event)

    def to_user(self, user_id: str, event: dict) -> bool:
        """Send to every connection of one user; whether it had any."""
        ids = sorted(self._by_user.get(user_id, ()))
        for connection_id in ids:
            self.connections[connection_id].send(event)
        return bool(ids)

    def clear(self) -> None:
        """Drop every connection (the emulator was reset)."""
        self.drop()
        self.connections.clear()
        self._by_user.clear()
        self._watchers.clear()


# --- the /connect endpoint ---------------------------------------------------------------


def _connect_payload(query: dict[str, str]) -> dict:
    raw = query.get("json")
    if not raw:
        raise StreamError(INPUT, "the json query parameter with the connect payload is required")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise StreamError(INPUT, "the json query parameter is not valid JSON") from None
    if not isinstance(payload, dict):
        raise StreamError(INPUT, "the json query parameter must be a JSON object")
    return payload


def health_check(connection: Connection, me: dict | None = None) -> dict:
    """The health.check event; the first one of a connection carries `me`."""
    event: dict[str, Any] = {
        "type": "health.check",
        "connection_id": connection.id,
        "cid": "*",
        "created_at": rfc3339(now_ns()),
    }
    if me is not None:
        event["me"] = me
    return event


async def serve(emulator: Emulator, scope: dict, receive: Any, send: Any) -> None:
    """Serve one WebSocket at /connect until either side closes it."""
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"].rstrip("/") != "/connect":
        await send({"type": "websocket.close", "code": 1008, "reason": f"{scope['path']} is not a WebSocket endpoint"})
        return
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    await send({"type": "websocket.accept"})
    try:
        caller = emulator.authenticator.authenticate(
            query.get("api_key"), query.get("stream-auth-type"), query.get("authorization")
        )
        payload = _connect_payload(query)
        if caller.user_id is None:
            raise StreamError(AUTHENTICATION, "a WebSocket connection needs a user token (one with a user_id claim)")
        if payload.get("user_id") != caller.user_id:
            raise StreamError(
                AUTHENTICATION,
                f"the connect payload's user_id {payload.get('user_id')!r} does not match the token's user_id "
                f"{caller.user_id!r}",
            )
        loop = asyncio.get_running_loop()
        with emulator.lock:
            connection, came_online, me = sessions.open_session(
                emulator, caller.user_id, payload.get("user_details"), loop
            )
    except StreamError as error:
        await send({"type": "websocket.send", "text": json.dumps({"error": envelope(CONNECT, error, "0.00ms")})})
        await send({"type": "websocket.close", "code": CLOSE_REFUSED, "reason": _reason(error.detail)})
        return
    try:
        await send({"type": "websocket.send", "text": json.dumps(health_check(connection, me))})
        if came_online:
            with emulator.lock:
                sessions.presence(emulator, connection.user_id)
        await _pump(emulator, connection, receive, send)
    finally:
        with emulator.lock:
            sessions.close_session(emulator, connection)


async def _pump(emulator: Emulator, connection: Connection, receive: Any, send: Any) -> None:
    """Forward queued events and answer the client's health checks until one side closes."""

    async def read() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            if _is_health_check(text):
                connection.send(health_check(connection))

    reader = asyncio.ensure_future(read())
    try:
        while not reader.done():
            waiter = asyncio.ensure_future(connection.next(emulator.health_check_interval_s))
            done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                break
            frame = waiter.result()
            if frame is _CLOSE:
                await send({"type": "websocket.close", "code": CLOSE_RESTART, "reason": "the emulator dropped it"})
                break
            text = frame if frame is not None else json.dumps(health_check(connection))
            await send({"type": "websocket.send", "text": text})
    finally:
        reader.cancel()


def _reason(detail: str) -> str:
    """A close reason within the protocol's 123 bytes (the full text is in the error frame)."""
    encoded = detail.encode("utf-8")
    return detail if len(encoded) <= 123 else encoded[:120].decode("utf-8", "ignore") + "..."


def _is_health_check(text: str) -> bool:
    """Whether a client frame is the SDK's `[{"type": "health.check", ...}]` ping."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    items = value if isinstance(value, list) else [value]
    return any(isinstance(i, dict) and i.get("type") == "health.check" for i in items)

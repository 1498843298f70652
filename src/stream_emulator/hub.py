"""The open client connections (the `/connect` WebSockets): who is online, who watches which channel,
and the fan-out of events to them.

Handlers run on the server's event loop; they hand events to a connection's queue and never wait.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import Any

# How often the server says it is alive on an otherwise quiet connection (Stream: about 30 s).
HEALTH_CHECK_INTERVAL_S = 30.0
# What Connection.next returns once the connection was asked to close.
CLOSE = object()


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
        """Ask the connection to close (its endpoint closes it as a server restart would)."""
        self._put(CLOSE)

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
        """The next queued frame (str or CLOSE), or None after `timeout` seconds of silence."""
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

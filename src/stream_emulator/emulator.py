"""The Emulator: one app's state, faults, request log and webhooks, and the helpers tests use."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from . import persistence
from .auth import Authenticator
from .dialects import make_v1, make_v2
from .faults import Faults
from .hub import HEALTH_CHECK_INTERVAL_S, Hub
from .ratelimit import RateLimiter
from .requestlog import RequestLog, RequestRecord
from .state import State
from .webhooks import DEFAULT_LOG_SIZE, RetryPolicy, WebhookDelivery, Webhooks

# Writes within this window share one state-file write: rewriting a large state after every
# call would cost more CPU than the calls themselves.
PERSIST_DELAY_S = 0.2


class Emulator:
    """A local Stream Chat app. Constructing one does no I/O; the state file is read on first use."""

    def __init__(
        self,
        api_key: str = "key",
        api_secret: str = "secret",
        state_file: Path | str | None = None,
        faults: Faults | None = None,
        rate_limits: bool = False,
        webhook_policy: RetryPolicy | None = None,
        webhook_log_size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        """`rate_limits`: enforce Stream's per-minute and per-second limits (off here so tests keep
        their headroom; the `stream-emulator` command turns them on). `webhook_policy`: the
        webhook retry policy (Stream's tries and timeouts; the pause between tries is ours)."""
        self.api_key = api_key
        self.api_secret = api_secret
        self.state_file = Path(state_file) if state_file is not None else None
        self.faults = faults if faults is not None else Faults()
        self.authenticator = Authenticator(api_key, api_secret)
        self.log = RequestLog()
        self.lock = threading.RLock()
        # Bumped by reset(): a call that started before it is neither applied nor logged afterwards.
        self.generation = 0
        # Calls being served right now (tests wait for 0 before they reset between cases).
        self.in_flight = 0
        # The most calls served at once since the last reset (shows whether a client overlaps its calls).
        self.max_in_flight = 0
        self.v1 = make_v1()
        self.v2 = make_v2()
        self._state: State | None = None
        self._dirty = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.rate_limiter = RateLimiter(enabled=rate_limits)
        # The open /connect WebSockets and what they watch; the server's health.check period on them.
        self.hub = Hub()
        self.health_check_interval_s = HEALTH_CHECK_INTERVAL_S
        self.webhooks = Webhooks(
            api_key, api_secret, lambda: self.state.app, self.faults, webhook_policy, webhook_log_size
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The live state, loaded from the state file the first time it is needed."""
        if self._state is None:
            self.load()
        return self._state  # type: ignore[return-value]

    def load(self) -> None:
        """Read the state file (or start empty) unless the state is already loaded."""
        with self.lock:
            if self._state is None:
                self._state = persistence.load(self.state_file) if self.state_file else State()

    def persist(self) -> None:
        """Write the state file now, if there is one."""
        if self.state_file is not None and self._state is not None:
            with self.lock:
                self._dirty = False
                persistence.save(self._state, self.state_file)

    def mark_dirty(self) -> None:
        """Note a change; the state file is rewritten within PERSIST_DELAY_S (and on shutdown)."""
        if self.state_file is None:
            return
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.persist()
            return
        if self._flush_handle is not None and self._flush_loop is loop:
            return
        self._flush_loop = loop
        self._flush_handle = loop.call_later(PERSIST_DELAY_S, self.flush)

    def flush(self) -> None:
        """Write pending changes to the state file now."""
        self._flush_handle = self._flush_loop = None
        if self._dirty:
            self.persist()

    def forget_user(self, user_id: str) -> None:
        """Drop cached renderings of a hard-deleted user."""
        self.v1.forget_user(user_id)
        self.v2.forget_user(user_id)

    def reset(self) -> None:
        """Wipe state, faults, the request log and recorded webhook deliveries."""
        with self.lock:
            # Calls still in flight from before the reset (a client that gave up on a slow answer) must not
            # touch the new state nor show up in the new request log.
            self.generation += 1
            self._state = State()
            self.hub.clear()
            self.v1, self.v2 = make_v1(), make_v2()
            self.persist()
        self.faults.reset()
        self.log.clear()
        self.webhooks.clear()
        self.rate_limiter.reset()
        self.max_in_flight = 0

    # --- what tests read -----------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """The recorded API calls, oldest first (the newest 10,000)."""
        return self.log.records()

    def count(self, operation: str | None = None) -> int:
        """How many API calls were made, optionally of one operation."""
        return self.log.count(operation)

    def clear_requests(self) -> None:
        """Forget the recorded API calls."""
        self.log.clear()

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery attempt so far."""
        return self.webhooks.deliveries

    def get_user(self, user_id: str) -> dict | None:
        """The stored user as the v1 dialect shows it (custom fields flattened), or None."""
        with self.lock:
            user = self.state.users.get(user_id)
            return dict(self.v1.full_user(user)) if user is not None else None

    def get_channel(self, channel_type: str, channel_id: str) -> dict | None:
        """The channel (v1 shape) plus "members": [user_id, ...] and "created_by_id", or None."""
        with self.lock:
            channel = self.state.channels.get(f"{channel_type}:{channel_id}")
            if channel is None:
                return None
            body = dict(self.v1.channel(channel, self.state.users))
            body["members"] = list(channel.members)
            body["created_by_id"] = channel.created_by_id
            body["messages"] = [{"id": m.id, "text": m.text, "user_id": m.user_id} for m in channel.messages]
            return body

    def channel_count(self) -> int:
        """How many channels exist."""
        return len(self.state.channels)

    def user_ids(self) -> set[str]:
        """The ids of every stored user (soft-deleted ones included)."""
        with self.lock:
            return set(self.state.users)

    def summary(self) -> dict:
        """Counts and faults, for the admin path and the CLI."""
        with self.lock:
            return {
                "users": len(self.state.users),
                "channels": len(self.state.channels),
                "requests": self.count(),
                "faults": self.faults.snapshot(),
                "webhook_deliveries": self.webhooks.total,
                "rate_limits": self.rate_limiter.enabled,
            }

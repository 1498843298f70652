"""Faults a test or a developer injects: latency, 5xx rates, 429 bursts, timeouts after the
write, and a delay before new users become visible."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

ANY = "*"


@dataclass
class ErrorRate:
    """A share of calls answered with a 5xx; with `body`, answered in that JSON instead of Stream's error envelope
    (a gateway or balancer in front of Stream answering in its own words, e.g. `{"message": "Bad Gateway"}`)."""

    rate: float
    status: int
    body: dict | None = None


@dataclass
class Burst:
    """The next `remaining` calls get 429 until `reset_at` (Unix seconds)."""

    remaining: int
    reset_at: float


@dataclass
class Hold:
    """The next `remaining` calls apply their write and then never answer (for `hold_s`)."""

    remaining: int
    hold_s: float


class Faults:
    """The fault settings of one emulator; safe to change from any thread while it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random()
        self.reset()

    def reset(self) -> None:
        """Remove every fault."""
        with self._lock:
            self.latency_ms = 0.0
            self.jitter_ms = 0.0
            self.visibility_delay_ms = 0.0
            self.error_rates: dict[str, ErrorRate] = {}
            self.bursts: dict[str, Burst] = {}
            self.holds: dict[str, Hold] = {}
            # Webhook tries whose (2xx) answer is replaced: a status, or 0 for a timeout.
            self.webhook_failures: list[int] = []
            self._active = False

    def _touch(self) -> None:
        self._active = bool(self.latency_ms or self.jitter_ms or self.error_rates or self.bursts or self.holds)

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        """Delay every response by `ms` plus a uniform random 0..`jitter_ms`."""
        with self._lock:
            self.latency_ms = max(0.0, float(ms))
            self.jitter_ms = max(0.0, float(jitter_ms))
            self._touch()

    def set_error_rate(self, operation: str, rate: float, status: int = 500, body: dict | None = None) -> None:
        """Answer a share `rate` (0..1) of `operation`'s calls ("*" = all) with `status`: in Stream's error envelope,
        or with `body` as the whole JSON answer (what a gateway in front of Stream says, not Stream)."""
        with self._lock:
            if rate <= 0:
                self.error_rates.pop(operation, None)
            else:
                self.error_rates[operation] = ErrorRate(
                    min(1.0, float(rate)), int(status), dict(body) if body is not None else None
                )
            self._touch()

    def rate_limit_burst(self, operation: str, count: int, reset_in_s: float) -> None:
        """The next `count` calls of `operation` get 429 code 9, resetting `reset_in_s` from now."""
        with self._lock:
            self.bursts[operation] = Burst(int(count), time.time() + float(reset_in_s))
            self._touch()

    def timeout_after_write(self, operation: str, count: int = 1, hold_s: float = 30.0) -> None:
        """The next `count` calls apply their write, then hold the response for `hold_s` or
        until the client hangs up, and never answer."""
        with self._lock:
            self.holds[operation] = Hold(int(count), float(hold_s))
            self._touch()

    def fail_webhooks(self, count: int, status: int = 503) -> None:
        """The next `count` webhook tries reach the receiver, but their answer counts as `status`
        (0 = the try timed out), so Stream's retry policy sends the same X-Webhook-Id again."""
        with self._lock:
            self.webhook_failures = [int(status)] * int(count)

    def take_webhook_failure(self) -> int | None:
        """The status to pretend for this webhook try, or None to keep the real answer."""
        with self._lock:
            return self.webhook_failures.pop(0) if self.webhook_failures else None

    def set_visibility_delay(self, ms: float) -> None:
        """A user can be a member only `ms` after its first creation."""
        with self._lock:
            self.visibility_delay_ms = max(0.0, float(ms))

    # --- used by the app on each request -------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any per-request fault is set (the hot path skips the rest when not)."""
        return self._active

    def delay_s(self) -> float:
        """How long to hold this response back."""
        if not (self.latency_ms or self.jitter_ms):
            return 0.0
        return (self.latency_ms + self._random.uniform(0.0, self.jitter_ms)) / 1000.0

    def take_burst(self, operation: str) -> float | None:
        """The reset time if this call falls in a 429 burst, else None."""
        with self._lock:
            for key in (operation, ANY):
                burst = self.bursts.get(key)
                if burst is None:
                    continue
                burst.remaining -= 1
                if burst.remaining <= 0:
                    del self.bursts[key]
                    self._touch()
                if burst.remaining >= 0:
                    return burst.reset_at
        return None

    def draw_error(self, operation: str) -> ErrorRate | None:
        """The rule (status, and a gateway's body if any) if this call is drawn to fail, else None."""
        rule = self.error_rates.get(operation) or self.error_rates.get(ANY)
        if rule is None:
            return None
        if rule.rate >= 1.0 or self._random.random() < rule.rate:
            return rule
        return None

    def take_hold(self, operation: str) -> float | None:
        """Seconds to hold this call's response after its write, else None."""
        with self._lock:
            for key in (operation, ANY):
                hold = self.holds.get(key)
                if hold is None:
                    continue
                hold.remaining -= 1
                if hold.remaining <= 0:
                    del self.holds[key]
                    self._touch()
                return hold.hold_s
        return None

    def describe(self) -> list[str]:
        """One line per active fault, for the CLI banner and the admin summary."""
        lines = []
        if self.latency_ms or self.jitter_ms:
            lines.append(f"latency {self.latency_ms:g} ms + jitter up to {self.jitter_ms:g} ms")
        for op, rule in self.error_rates.items():
            said = f" {rule.body}" if rule.body is not None else ""
            lines.append(f"error rate {op}: {rule.rate:g} answered with HTTP {rule.status}{said}")
        for op, burst in self.bursts.items():
            lines.append(f"429 burst {op}: next {burst.remaining} calls, reset at {burst.reset_at:.0f}")
        for op, hold in self.holds.items():
            lines.append(f"timeout after write {op}: next {hold.remaining} calls held {hold.hold_s:g} s")
        if self.visibility_delay_ms:
            lines.append(f"new users usable as members after {self.visibility_delay_ms:g} ms")
        if self.webhook_failures:
            lines.append(
                f"next {len(self.webhook_failures)} webhook tries answered {self.webhook_failures[0] or 'timeout'}"
            )
        return lines

    def snapshot(self) -> dict:
        """The settings as plain data (admin GET)."""
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "visibility_delay_ms": self.visibility_delay_ms,
            "error_rates": {op: vars(r) for op, r in self.error_rates.items()},
            "rate_limit_bursts": {op: vars(b) for op, b in self.bursts.items()},
            "timeout_after_write": {op: vars(h) for op, h in self.holds.items()},
            "webhook_failures": list(self.webhook_failures),
        }

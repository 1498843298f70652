"""The admin HTTP path under /_emulator/ (served only when enabled): state, log, faults, reset.

GET  /_emulator/state      counts and active faults
GET  /_emulator/requests   the request log
DELETE /_emulator/requests forget the request log (state untouched)
GET  /_emulator/webhooks   recorded webhook deliveries
POST /_emulator/faults     {"latency_ms", "jitter_ms", "error_rates": {op: rate | {rate, status, body?}},
                            "rate_limit_bursts": {op: {count, reset_in_s}},
                            "timeout_after_write": {op: {count, hold_s}},
                            "visibility_delay_ms", "webhook_failures": {count, status},
                            "reset": bool}
POST /_emulator/reset      wipe state, faults, log and deliveries
POST /_emulator/connections/drop {"user_id"?}: close the /connect WebSockets (of one user, or all)
                            as a server restart would, so clients reconnect
POST /_emulator/rate_limits {"enabled": bool}: enforce Stream's rate limits or only announce them
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .emulator import Emulator
from .faults import Faults


def apply_faults(faults: Faults, spec: dict[str, Any]) -> None:
    """Set faults from the JSON knobs the admin path and the CLI share."""
    if spec.get("reset"):
        faults.reset()
    if "latency_ms" in spec or "jitter_ms" in spec:
        faults.set_latency(spec.get("latency_ms", faults.latency_ms), spec.get("jitter_ms", faults.jitter_ms))
    for operation, rule in (spec.get("error_rates") or {}).items():
        if isinstance(rule, dict):
            faults.set_error_rate(operation, rule["rate"], rule.get("status", 500), rule.get("body"))
        else:
            faults.set_error_rate(operation, rule)
    for operation, rule in (spec.get("rate_limit_bursts") or {}).items():
        faults.rate_limit_burst(operation, rule["count"], rule["reset_in_s"])
    for operation, rule in (spec.get("timeout_after_write") or {}).items():
        faults.timeout_after_write(operation, rule.get("count", 1), rule.get("hold_s", 30.0))
    if "visibility_delay_ms" in spec:
        faults.set_visibility_delay(spec["visibility_delay_ms"])
    if "webhook_failures" in spec:
        rule = spec["webhook_failures"]
        faults.fail_webhooks(rule["count"], rule.get("status", 503))


async def handle(emulator: Emulator, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """(status, JSON body) for one admin request."""
    route = path.rstrip("/")[len("/_emulator") :]
    if method == "GET" and route == "/state":
        return 200, emulator.summary()
    if method == "GET" and route == "/requests":
        return 200, {"requests": [asdict(r) for r in emulator.requests]}
    if method == "DELETE" and route == "/requests":
        emulator.clear_requests()
        return 200, {"cleared": True}
    if method == "GET" and route == "/webhooks":
        return 200, {
            "deliveries": [
                {
                    "event_type": d.event_type,
                    "webhook_id": d.webhook_id,
                    "url": d.url,
                    "status": d.status,
                    "error": d.error,
                    "attempt": d.attempt,
                    "faulted": d.faulted,
                    "payload": d.payload,
                }
                for d in emulator.webhook_deliveries
            ]
        }
    if method == "POST" and route == "/faults":
        try:
            spec = json.loads(body or b"{}")
            apply_faults(emulator.faults, spec)
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": f"bad fault spec: {exc}"}
        return 200, {"faults": emulator.faults.snapshot(), "active": emulator.faults.describe()}
    if method == "POST" and route == "/rate_limits":
        try:
            enabled = json.loads(body or b"{}")["enabled"]
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": f'expected {{"enabled": true|false}}: {exc}'}
        emulator.rate_limiter.enabled = bool(enabled)
        return 200, {"rate_limits": emulator.rate_limiter.enabled}
    if method == "POST" and route == "/connections/drop":
        try:
            user_id = json.loads(body or b"{}").get("user_id")
        except (ValueError, AttributeError) as exc:
            return 400, {"error": f'expected {{"user_id": "..."}} or {{}}: {exc}'}
        with emulator.lock:
            return 200, {"dropped": emulator.hub.drop(user_id)}
    if method == "POST" and route == "/reset":
        emulator.reset()
        return 200, {"reset": True}
    return 404, {"error": f"{method} {path} is not an admin route"}

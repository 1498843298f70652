"""The start-up check of `serve` and `worker`: one GetApp call, before anything is served or claimed.

- Stream refuses the key or secret (401/403): refuse to start, in one line that says what to do. A wrong secret
  would otherwise issue tokens the app cannot use and dead-letter the first outbox row.
- Stream is unreachable (network, timeout, 5xx, 429): warn and start. The service is built to keep serving
  without Stream (conversations answer `provisioning`, the outbox finishes them later), so an outage of Stream
  must not keep it down too.
- ONECREW_STREAM_STARTUP_CHECK=false skips the call; so does the embedded emulator (its credentials are ours).
"""

from __future__ import annotations

from onecrew_chat.config import Settings
from onecrew_chat.logging import get_logger
from onecrew_chat.observability.stream_probe import probe_stream
from onecrew_chat.stream.client import StreamGateway

log = get_logger(__name__)

SKIP_SETTING = "ONECREW_STREAM_STARTUP_CHECK"


class StreamCredentialsRejected(Exception):
    """Stream refused STREAM_API_KEY/STREAM_API_SECRET; the message is the one line to print."""


async def check_stream_at_startup(settings: Settings) -> str | None:
    """None when Stream accepted the credentials (or the check is off); a warning in words when unreachable.

    Raises StreamCredentialsRejected when Stream answered 401/403.
    """
    if not settings.stream_startup_check or not settings.stream_api_key:
        return None
    gateway = StreamGateway.from_settings(settings)
    try:
        probe = await probe_stream(gateway, timeout_s=float(settings.stream_timeout_s) + 1.0)
    finally:
        await gateway.close()
    if probe.credentials == "rejected":
        raise StreamCredentialsRejected(
            f"Stream rejected STREAM_API_KEY/STREAM_API_SECRET ({probe.status} {probe.error}); "
            f"check them or set {SKIP_SETTING}=false"
        )
    if not probe.reachable:
        warning = (
            f"Stream at {settings.stream_base_url} is not reachable ({probe.error}); starting anyway: "
            "conversations wait as `provisioning` and the outbox sends them once Stream answers"
        )
        log.warning("stream.startup_check_unreachable", base_url=settings.stream_base_url, error=probe.error)
        return warning
    log.info("stream.startup_check_ok", base_url=settings.stream_base_url, ms=probe.ms)
    return None

"""PLACEHOLDER: replaced by the real adapter (see stream/errors.py for the error tree)."""

from __future__ import annotations


class StreamGateway:
    """Thin async adapter over getstream.AsyncStream exposing only the operations the service uses."""

    def __init__(self, api_key: str, api_secret: str, base_url: str, timeout_s: float = 2.0):
        self.api_key = api_key
        self._api_secret = api_secret
        self.base_url = base_url
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings) -> "StreamGateway":
        """Build from Settings (STREAM_API_KEY, STREAM_API_SECRET, STREAM_BASE_URL, ONECREW_STREAM_TIMEOUT_S)."""
        return cls(
            api_key=settings.stream_api_key or "",
            api_secret=settings.stream_api_secret.get_secret_value() if settings.stream_api_secret else "",
            base_url=settings.stream_base_url,
            timeout_s=settings.stream_timeout_s,
        )

    async def close(self) -> None:
        """Close the HTTP pool."""

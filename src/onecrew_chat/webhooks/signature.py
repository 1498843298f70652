"""Stream's webhook signature: hex HMAC-SHA256 of the raw request body, keyed with the API secret."""

from __future__ import annotations

import hashlib
import hmac

from onecrew_chat.errors import Unauthorized

INVALID_SIGNATURE = "Invalid webhook signature"


def sign(body: bytes, secret: str) -> str:
    """The X-Signature Stream sends with `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | None) -> None:
    """401 unless `signature` is the body's signature under `secret` (compared in constant time)."""
    if not secret or not signature:
        raise Unauthorized(INVALID_SIGNATURE, code="invalid_signature")
    presented = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(sign(body, secret).encode(), presented):
        raise Unauthorized(INVALID_SIGNATURE, code="invalid_signature")

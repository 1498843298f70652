"""A webhook body as Stream signed it, and its signature: gzip-compressed deliveries undone, within the same size
limit, and the X-Signature checked against the uncompressed JSON.

With the app setting `enable_hook_payload_compression`, Stream gzips the JSON and sends `Content-Encoding: gzip`;
`X-Signature` is the HMAC of the uncompressed JSON (Stream's webhook docs; its SDKs' verify-and-decode helpers
also recognise gzip by its magic bytes, since some proxies drop the header). The decompressed size is held to
the same limit as a plain body, so a small gzip bomb cannot make the service inflate gigabytes: decompression
stops one byte past the limit. The signature is the hex HMAC-SHA256 of that JSON, keyed with the API secret.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

from onecrew_chat.errors import AppError, BadRequest, Unauthorized

MAX_WEBHOOK_BODY_BYTES = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
INVALID_SIGNATURE = "Invalid webhook signature"
IDENTITY = ("", "identity")


class PayloadTooLarge(AppError):
    """A body larger than the limit once decompressed (413)."""

    status_code = 413
    code = "body_too_large"


class UnsupportedEncoding(AppError):
    """A Content-Encoding Stream does not use (415)."""

    status_code = 415
    code = "unsupported_encoding"


def is_gzip(body: bytes, content_encoding: str | None) -> bool:
    """Whether the body is gzip: said by the header, or seen in its first two bytes (JSON never starts so)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in IDENTITY and encoding != "gzip":
        raise UnsupportedEncoding(
            f"Webhook Content-Encoding {encoding!r} is not supported; Stream sends gzip or none",
        )
    return encoding == "gzip" or body.startswith(GZIP_MAGIC)


def gunzip(body: bytes, limit: int = MAX_WEBHOOK_BODY_BYTES) -> bytes:
    """The decompressed body: 413 past `limit` bytes, 400 when it is not one whole gzip stream."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BadRequest("Webhook body is not valid gzip", code="invalid_gzip") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"Webhook body is too large once decompressed; at most {limit:,} bytes are accepted")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest("Webhook body is not one complete gzip stream", code="invalid_gzip")
    return data


def signed_body(body: bytes, content_encoding: str | None) -> bytes:
    """The JSON Stream signed: the body itself, or the body decompressed."""
    return gunzip(body) if is_gzip(body, content_encoding) else body


def sign(body: bytes, secret: str) -> str:
    """The X-Signature Stream sends with `body` (the uncompressed JSON)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | None) -> None:
    """401 unless `signature` is the body's signature under `secret` (compared in constant time)."""
    if not secret or not signature:
        raise Unauthorized(INVALID_SIGNATURE, code="invalid_signature")
    presented = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(sign(body, secret).encode(), presented):
        raise Unauthorized(INVALID_SIGNATURE, code="invalid_signature")

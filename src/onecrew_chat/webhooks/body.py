"""A webhook body as Stream signed it: gzip-compressed deliveries undone, within the same size limit.

With the app setting `enable_hook_payload_compression`, Stream gzips the JSON and sends `Content-Encoding: gzip`;
`X-Signature` is the HMAC of the uncompressed JSON (Stream's webhook docs; its SDKs' verify-and-decode helpers
also recognise gzip by its magic bytes, since some proxies drop the header). The decompressed size is held to
the same limit as a plain body, so a small gzip bomb cannot make the service inflate gigabytes: decompression
stops one byte past the limit.
"""

from __future__ import annotations

import zlib

from onecrew_chat.errors import AppError, BadRequest

MAX_WEBHOOK_BODY_BYTES = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
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

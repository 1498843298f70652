"""Image and file uploads to a channel (multipart `file`), kept in memory and served back at
`/uploads/{id}/{name}` on the emulator itself (no auth, like Stream's CDN links)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from .. import permissions
from ..call import Call
from ..errors import input_error, not_found

MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # Stream's documented limit for files and images
UPLOADS_PATH = "/uploads/"


def _store(call: Call, image: bool) -> dict:
    channel = call.channel()
    permissions.check(call, channel, permissions.UPLOAD_ATTACHMENT)
    upload = call.files.get("file")
    if upload is None:
        raise input_error("file is a required multipart field", file="required")
    name, content_type, data = upload
    if not data:
        raise input_error("file is empty", file="empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise input_error(f"file is larger than {MAX_UPLOAD_BYTES} bytes", file="too large")
    if image and not content_type.startswith("image/"):
        raise input_error(f"an image upload must have an image/* content type, not {content_type}", file="not an image")
    upload_id = uuid.uuid4().hex
    call.state.uploads[upload_id] = (content_type, name, data)
    url = f"{call.base_url}{UPLOADS_PATH}{upload_id}/{quote(name or 'file')}"
    body = {"file": url}
    if image:
        body["thumb_url"] = url
    return body


def send_image(call: Call) -> dict:
    """POST /channels/{type}/{id}/image (multipart, field `file`)."""
    return _store(call, image=True)


def send_file(call: Call) -> dict:
    """POST /channels/{type}/{id}/file (multipart, field `file`)."""
    return _store(call, image=False)


def delete_upload(call: Call) -> dict:
    """DELETE /channels/{type}/{id}/image|file?url=."""
    channel = call.channel()
    permissions.check(call, channel, permissions.UPLOAD_ATTACHMENT)
    url = call.query.get("url") or ""
    upload_id = url.split(UPLOADS_PATH, 1)[1].split("/", 1)[0] if UPLOADS_PATH in url else ""
    if call.state.uploads.pop(upload_id, None) is None:
        raise not_found(f"upload {url} does not exist")
    return {}


def served(state_uploads: dict[str, tuple[str, str, bytes]], path: str) -> tuple[str, bytes] | None:
    """(content type, bytes) of the upload at `path` (/uploads/{id}/{name}), or None."""
    upload_id = path[len(UPLOADS_PATH) :].split("/", 1)[0]
    found = state_uploads.get(upload_id)
    return (found[0], found[2]) if found is not None else None

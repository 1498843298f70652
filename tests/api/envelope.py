"""The error envelope every refusal must have, and row counts that show nothing was stored."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select


def expect(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    """A JSON error envelope with this status, code and these words in `error`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    assert isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


async def stored(session, model) -> int:
    """How many rows of this model exist now."""
    session.expire_all()
    return await session.scalar(select(func.count()).select_from(model))

"""Directory rows shared by the HTTP tests."""

from __future__ import annotations

import pytest

from tests.factories import add_company, add_user


@pytest.fixture
async def people(session):
    """A user who owns a company, and another user."""
    me = await add_user(session, "Me")
    return {"me": me, "other": await add_user(session, "Other"), "company": await add_company(session, owner=me)}

"""Demo directory for embedded mode: Amr (from the original bug report), a few more users and two companies with owners.

The ids are fixed so that docs, curl examples and tests can name them.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.identity import ConversationType, Identity, pair_channel_id
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Company, CompanyMember, StreamIdentity, User

log = get_logger(__name__)

# The user from the original bug report (docs/reference/origin.md): present in our database, absent from Stream.
AMR_ID = "dda3aaa6-d123-4e57-aeef-f0661ec61352"
SAT_EDUCATION_ID = "5a7e0c1d-2b3f-4c8a-9d6e-0f1a2b3c4d5e"
LOLO_ACADEMY_ID = "10101010-a11c-4e5d-8f00-1010a0ade111"


@dataclass(frozen=True)
class DemoUser:
    """A demo OneCrew user."""

    id: str
    name: str
    category: str


@dataclass(frozen=True)
class DemoCompany:
    """A demo OneCrew company and the user who owns it."""

    id: str
    name: str
    subcategory: str
    owner_id: str


USERS = (
    DemoUser(AMR_ID, "Amr", "talent"),
    DemoUser("3f6c2a10-8d3e-4b7a-9c51-2e4f6a8b0c12", "Mona Samir", "crew"),
    DemoUser("7b1d9e24-5c6f-4a8b-8e3d-1f2a3b4c5d6e", "Karim Lotfy", "crew"),
    DemoUser("c4e8a2f6-1b3d-4e5f-a7c9-0d2e4f6a8b1c", "Nour El-Sayed", "talent"),
    DemoUser("e9f1b3d5-7a2c-4e6f-8b0d-3c5e7a9b1d2f", "Youssef Adel", "crew"),
)

COMPANIES = (
    DemoCompany(SAT_EDUCATION_ID, "Sat Education", "academy", owner_id=USERS[1].id),
    DemoCompany(LOLO_ACADEMY_ID, "Lolo Academy", "academy", owner_id=USERS[2].id),
)

# Who `serve` suggests as a second caller: the owner of Sat Education, to try acting as a company.
COMPANY_OWNER_ID = COMPANIES[0].owner_id
COMPANY_OWNER_NAME = next(u.name for u in USERS if u.id == COMPANY_OWNER_ID)

# What the printed example does: Amr, whom Stream has never seen, starts a chat with Sat Education (the original
# bug report's situation: docs/reference/origin.md).
EXAMPLE_CALLER_ID = AMR_ID
EXAMPLE_BODY = {"conversation_type": "user_company", "participant_ids": [SAT_EDUCATION_ID]}


async def directory_is_empty(session: AsyncSession) -> bool:
    """True when there is not a single user or company yet."""
    users = await session.scalar(select(func.count()).select_from(User))
    companies = await session.scalar(select(func.count()).select_from(Company))
    return not users and not companies


async def seed(session: AsyncSession) -> bool:
    """Fill an empty directory with the demo users and companies; False (and no change) if it holds anything."""
    if not await directory_is_empty(session):
        return False
    session.add_all(User(id=u.id, name=u.name, category=u.category) for u in USERS)
    session.add_all(Company(id=c.id, name=c.name, subcategory=c.subcategory) for c in COMPANIES)
    await session.flush()
    session.add_all(
        CompanyMember(company_id=c.id, user_id=c.owner_id, role="owner", invitation_status="accepted")
        for c in COMPANIES
    )
    await session.flush()
    log.debug("demo.seeded", users=len(USERS), companies=len(COMPANIES))
    return True


async def example_is_available(session: AsyncSession) -> bool:
    """True when the example's caller and company are in the directory (so the printed curl works)."""
    return (
        await session.get(User, EXAMPLE_CALLER_ID) is not None
        and await session.get(Company, SAT_EDUCATION_ID) is not None
    )


async def example_caller_in_stream(session: AsyncSession) -> bool:
    """True once the example's caller was upserted to Stream (our mirror has a row for them)."""
    return await session.get(StreamIdentity, Identity.user(EXAMPLE_CALLER_ID).stream_id) is not None


def example_curl(base_url: str, jwt: str) -> str:
    """A ready-to-paste curl that creates the example conversation (Amr with Sat Education)."""
    url = f"{base_url.rstrip('/')}/api/chat/conversations"
    body = json.dumps(EXAMPLE_BODY)
    return " \\\n    ".join(
        [
            f"curl -sS -X POST {shlex.quote(url)}",
            f"-H {shlex.quote('Authorization: Bearer ' + jwt)}",
            f"-H {shlex.quote('Content-Type: application/json')}",
            f"-d {shlex.quote(body)}",
        ]
    )


def _curl(method: str, url: str, token: str, body: Mapping[str, object] | None = None) -> str:
    parts = [f"curl -sS{' -X ' + method if method != 'GET' else ''} {shlex.quote(url)}"]
    parts.append(f"-H {shlex.quote('Authorization: Bearer ' + token)}")
    if body is not None:
        parts.append(f"-H {shlex.quote('Content-Type: application/json')}")
        parts.append(f"-d {shlex.quote(json.dumps(body))}")
    return " \\\n    ".join(parts)


def example_channel_id() -> str:
    """The channel of the example conversation (Amr with Sat Education)."""
    return pair_channel_id(ConversationType.USER_COMPANY, Identity.user(AMR_ID), Identity.company(SAT_EDUCATION_ID))


def unread_curl(base_url: str, jwt: str) -> str:
    """Amr's unread conversations count."""
    return _curl("GET", f"{base_url.rstrip('/')}/api/chat/conversations/unread-count?profile_type=user", jwt)


def status_curl(base_url: str, service_token: str) -> str:
    """The service's status report, with the service token (an internal operation)."""
    return _curl("GET", f"{base_url.rstrip('/')}/api/internal/status", service_token)


def message_curl(base_url: str, service_token: str) -> str:
    """Sat Education sends Amr a message through the internal API (idempotent by its id: change it to send again)."""
    url = f"{base_url.rstrip('/')}/api/internal/conversations/{example_channel_id()}/messages"
    body = {
        "id": "welcome-1",
        "sender": {"type": "company", "id": SAT_EDUCATION_ID},
        "text": "Welcome to Sat Education",
    }
    return _curl("POST", url, service_token, body)

"""Directory rows for conversation tests, written straight into the database (users, companies, owners)."""

from __future__ import annotations

from sqlalchemy import insert

from onecrew_chat.db import utcnow
from onecrew_chat.models import Company, CompanyMember, User
from tests.support import new_id


async def add_users(session, count: int, prefix: str = "User", *, image: bool = True) -> list[str]:
    """Insert `count` users (committed) and return their ids."""
    ids = [new_id() for _ in range(count)]
    now = utcnow()
    if ids:
        await session.execute(
            insert(User),
            [
                {
                    "id": i,
                    "name": f"{prefix} {n}",
                    "image_url": f"https://img.example/{i}.png" if image else None,
                    "category": "crew",
                    "created_at": now,
                    "updated_at": now,
                }
                for n, i in enumerate(ids)
            ],
        )
        await session.commit()
    return ids


async def add_user(session, name: str = "Amr", *, user_id: str | None = None, image_url: str | None = None) -> str:
    """Insert one user (committed) and return its id."""
    user_id = user_id or new_id()
    session.add(User(id=user_id, name=name, image_url=image_url, category="talent"))
    await session.commit()
    return user_id


async def add_company(
    session, name: str = "Sat Education", *, owner: str | None = None, role: str = "owner", status: str = "accepted"
) -> str:
    """Insert a company (committed), with `owner` as a member of the given role and status; returns its id."""
    company_id = new_id()
    session.add(
        Company(id=company_id, name=name, logo_url=f"https://logo.example/{company_id}.png", subcategory="academy")
    )
    await session.flush()
    if owner is not None:
        session.add(CompanyMember(company_id=company_id, user_id=owner, role=role, invitation_status=status))
    await session.commit()
    return company_id

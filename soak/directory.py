"""The soak's directory (users, companies with their owners), seeded through the internal API, and what the load
learned: the conversations each create acknowledged, per pair and per Idempotency-Key."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import jwt


@dataclass(frozen=True)
class Actor:
    """Who makes a request: a user, acting as themselves or as a company they own."""

    user_id: str
    company_id: str | None = None

    @property
    def stream_id(self) -> str:
        return f"onecrew_company_{self.company_id}" if self.company_id else f"onecrew_user_{self.user_id}"


@dataclass
class Directory:
    users: list[str]
    companies: list[str]
    owner: dict[str, str]  # company -> owner user
    revisions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def generate(cls, rng: random.Random, n_users: int, n_companies: int) -> Directory:
        users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_users)]
        companies = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_companies)]
        return cls(users, companies, {c: users[i % n_users] for i, c in enumerate(companies)})

    def user_profile(self, user_id: str) -> dict[str, str]:
        rev = self.revisions[user_id]
        return {
            "name": f"Soak User {user_id[:8]} r{rev}",
            "image_url": f"https://img.test/u/{user_id[:8]}/{rev}.png",
            "category": "crew",
        }

    def company_profile(self, company_id: str) -> dict[str, str]:
        rev = self.revisions[company_id]
        return {
            "name": f"Soak Co {company_id[:8]} r{rev}",
            "logo_url": f"https://img.test/c/{company_id[:8]}/{rev}.png",
            "subcategory": "studio",
        }


def bearer(secret: str, user_id: str) -> dict[str, str]:
    """The OneCrew backend JWT the app sends."""
    now = int(time.time())
    token = jwt.encode({"sub": user_id, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


async def seed(base_url: str, service_token: str, directory: Directory) -> None:
    """PUT every user, company and owner membership (no Stream call is needed for that)."""
    headers = {"Authorization": f"Bearer {service_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10.0) as http:
        for user_id in directory.users:
            (await http.put(f"/api/internal/users/{user_id}", json=directory.user_profile(user_id))).raise_for_status()
        for company_id in directory.companies:
            body = directory.company_profile(company_id)
            (await http.put(f"/api/internal/companies/{company_id}", json=body)).raise_for_status()
            member = {"role": "owner", "invitation_status": "accepted"}
            path = f"/api/internal/companies/{company_id}/members/{directory.owner[company_id]}"
            (await http.put(path, json=member)).raise_for_status()


@dataclass
class Acknowledged:
    """Conversations the service answered for, and who may open them."""

    by_pair: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # pair -> channel ids answered
    by_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key -> channel ids answered
    group_names: dict[str, str] = field(default_factory=dict)  # key -> group name
    openers: dict[str, list[Actor]] = field(default_factory=dict)  # channel id -> actors taking part
    members: dict[str, list[str]] = field(default_factory=dict)  # channel id -> stream ids
    replayed: int = 0
    pair_answers: int = 0

    def record(self, channel_id: str, actors: list[Actor], *, pair: str | None = None, key: str | None = None) -> None:
        if pair is not None:
            self.by_pair[pair].add(channel_id)
            self.pair_answers += 1
        if key is not None:
            self.by_key[key].add(channel_id)
        self.openers.setdefault(channel_id, actors)
        self.members.setdefault(channel_id, sorted({a.stream_id for a in actors}))

    def channels(self) -> set[str]:
        return set(self.openers)

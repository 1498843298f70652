"""1,000 mixed requests as the app (and the main backend, and Stream's webhooks) would send them."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onecrew_chat.webhooks.body import sign
from soak.client import AppClient
from soak.directory import Acknowledged, Actor, Directory, bearer

# kind -> share of the requests
MIX = {
    "token": 0.09,
    "create_pair": 0.27,
    "create_group": 0.10,
    "repeat_group": 0.04,
    "get": 0.10,
    "prepare": 0.08,
    "profile_put": 0.08,
    "newcomer": 0.04,
    "listing": 0.07,
    "unread": 0.06,
    "webhook": 0.07,
}
# Requests each kind sends (a newcomer is a PUT, then a create and a second PUT at the same time).
COST = {"newcomer": 3}


@dataclass
class Secrets:
    jwt: str
    service: str
    stream: str


class Load:
    """Runs one planned request at a time per task; `done[0]` counts finished ones (the kill schedule reads it)."""

    def __init__(self, client: AppClient, directory: Directory, secrets: Secrets, seed: int) -> None:
        self.client, self.directory, self.secrets = client, directory, secrets
        self.rng = random.Random(seed)
        self.ack = Acknowledged()
        self.done = [0]
        self.pairs = self._pair_pool()
        self.keys: list[tuple[str, Actor, dict[str, Any]]] = []

    def _pair_pool(self) -> list[tuple[str, Actor, dict[str, Any], list[Actor]]]:
        """(pair, actor, body, both actors) for a fixed set of pairs, each in both directions where both can start."""
        d, rng, pool = self.directory, self.rng, []
        for _ in range(60):
            a, b = rng.sample(d.users, 2)
            ua, ub = Actor(a), Actor(b)
            pool += [
                (ua, {"conversation_type": "user_user", "participant_ids": [b]}, [ua, ub]),
                (ub, {"conversation_type": "user_user", "participant_ids": [a]}, [ub, ua]),
            ]
        for _ in range(40):
            user, company = rng.choice(d.users), rng.choice(d.companies)
            if d.owner[company] == user:
                continue
            u, c = Actor(user), Actor(d.owner[company], company)
            pool += [
                (u, {"conversation_type": "user_company", "participant_ids": [company]}, [u, c]),
                (c, {"conversation_type": "user_company", "participant_ids": [user], "company_id": company}, [c, u]),
            ]
        for _ in range(20):
            c1, c2 = rng.sample(d.companies, 2)
            if d.owner[c1] == d.owner[c2]:
                continue
            a1, a2 = Actor(d.owner[c1], c1), Actor(d.owner[c2], c2)
            pool += [
                (a1, {"conversation_type": "company_company", "participant_ids": [c2], "company_id": c1}, [a1, a2]),
                (a2, {"conversation_type": "company_company", "participant_ids": [c1], "company_id": c2}, [a2, a1]),
            ]
        return [("|".join(sorted(x.stream_id for x in actors)), actor, body, actors) for actor, body, actors in pool]

    def plan(self, n: int) -> list[str]:
        """Kinds whose requests add up to exactly `n`."""
        kinds, planned, total = list(MIX), [], 0
        while total < n:
            kind = self.rng.choices(kinds, weights=[MIX[k] for k in kinds])[0]
            if total + COST.get(kind, 1) <= n:
                planned.append(kind)
                total += COST.get(kind, 1)
        return planned

    async def run(self, n: int, concurrency: int) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for kind in self.plan(n):
            queue.put_nowait(kind)

        async def one_task() -> None:
            while True:
                try:
                    kind = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await getattr(self, kind)()
                self.done[0] += COST.get(kind, 1)

        await asyncio.gather(*(one_task() for _ in range(concurrency)))

    # --- the requests -------------------------------------------------------------------------

    def _auth(self, actor: Actor) -> dict[str, str]:
        return bearer(self.secrets.jwt, actor.user_id)

    def _profile(self, actor: Actor) -> dict[str, str]:
        if actor.company_id:
            return {"profile_type": "company", "company_id": actor.company_id}
        return {"profile_type": "user"}

    def _any_actor(self) -> Actor:
        if self.rng.random() < 0.3:
            company = self.rng.choice(self.directory.companies)
            return Actor(self.directory.owner[company], company)
        return Actor(self.rng.choice(self.directory.users))

    async def token(self) -> None:
        actor = self._any_actor()
        await self.client.request(
            "token", "POST", "/api/chat/token", params=self._profile(actor), headers=self._auth(actor)
        )

    async def create_pair(self) -> None:
        pair, actor, body, actors = self.rng.choice(self.pairs)
        answer = await self.client.request(
            "create_pair", "POST", "/api/chat/conversations", json=body, headers=self._auth(actor)
        )
        if answer is not None and answer.status == 200:
            self.ack.record(answer.body["data"]["id"], actors, pair=pair)

    async def newcomer(self) -> None:
        """A user new to the directory, then at once a first create with them and a change of their profile: the
        PUT lands while their first upsert to Stream is in flight (the mirror must keep the newer profile)."""
        d = self.directory
        user = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        service = {"Authorization": f"Bearer {self.secrets.service}"}
        answer = await self.client.request(
            "newcomer_put", "PUT", f"/api/internal/users/{user}", json=d.user_profile(user), headers=service
        )
        if answer is None or answer.status != 200:
            return
        starter = Actor(self.rng.choice(d.users))
        d.revisions[user] += 1
        body = {"conversation_type": "user_user", "participant_ids": [user]}
        lag_s = self.rng.uniform(0.02, 0.15)

        async def put_during_create() -> None:
            # The load makes the race on purpose: the create has read the profile and its upsert (50-300 ms of
            # emulator latency) is in flight when the new profile lands.
            await asyncio.sleep(lag_s)
            await self.client.request(
                "newcomer_put", "PUT", f"/api/internal/users/{user}", json=d.user_profile(user), headers=service
            )

        created, _ = await asyncio.gather(
            self.client.request(
                "newcomer_create", "POST", "/api/chat/conversations", json=body, headers=self._auth(starter)
            ),
            put_during_create(),
        )
        if created is not None and created.status == 200:
            actors = [starter, Actor(user)]
            self.ack.record(created.body["data"]["id"], actors, pair="|".join(sorted(a.stream_id for a in actors)))

    async def create_group(self) -> None:
        creator = Actor(self.rng.choice(self.directory.users))
        others = self.rng.sample([u for u in self.directory.users if u != creator.user_id], self.rng.randint(2, 4))
        key = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        name = f"soak group {key[:13]}"
        body = {"conversation_type": "group", "participant_ids": others, "name": name}
        self.ack.group_names[key] = name
        self.keys.append((key, creator, body))
        await self._keyed(key, creator, body, [creator, *map(Actor, others)])

    async def repeat_group(self) -> None:
        """The same Idempotency-Key and body again: a retry the app makes, or a double tap."""
        if not self.keys:
            return await self.create_group()
        key, creator, body = self.rng.choice(self.keys)
        await self._keyed(key, creator, body, [creator, *map(Actor, body["participant_ids"])])

    async def _keyed(self, key: str, creator: Actor, body: dict[str, Any], actors: list[Actor]) -> None:
        headers = self._auth(creator) | {"Idempotency-Key": key}
        answer = await self.client.request(
            "create_group", "POST", "/api/chat/conversations", keyed=True, json=body, headers=headers
        )
        if answer is not None and answer.status == 200:
            self.ack.record(answer.body["data"]["id"], actors, key=key)
            if answer.headers.get("idempotent-replayed") == "true":
                self.ack.replayed += 1

    def _opened(self) -> tuple[str, Actor] | None:
        if not self.ack.openers:
            return None
        channel_id = self.rng.choice(sorted(self.ack.openers))
        return channel_id, self.rng.choice(self.ack.openers[channel_id])

    async def get(self) -> None:
        found = self._opened()
        if found is None:
            return await self.create_pair()
        channel_id, actor = found
        await self.client.request("get", "GET", f"/api/chat/conversations/{channel_id}", headers=self._auth(actor))

    async def prepare(self) -> None:
        found = self._opened()
        if found is None:
            return await self.create_pair()
        channel_id, actor = found
        await self.client.request(
            "prepare", "POST", f"/api/chat/conversations/{channel_id}/prepare", headers=self._auth(actor)
        )

    async def profile_put(self) -> None:
        d = self.directory
        if self.rng.random() < 0.3:
            company = self.rng.choice(d.companies)
            d.revisions[company] += 1
            path, body = f"/api/internal/companies/{company}", d.company_profile(company)
        else:
            user = self.rng.choice(d.users)
            d.revisions[user] += 1
            path, body = f"/api/internal/users/{user}", d.user_profile(user)
        headers = {"Authorization": f"Bearer {self.secrets.service}"}
        await self.client.request("profile_put", "PUT", path, json=body, headers=headers)

    async def listing(self) -> None:
        actor = self._any_actor()
        params = self._profile(actor) | {"page": "1", "limit": "50"}
        await self.client.request("listing", "GET", "/api/chat/conversations", params=params, headers=self._auth(actor))

    async def unread(self) -> None:
        actor = self._any_actor()
        await self.client.request(
            "unread",
            "GET",
            "/api/chat/conversations/unread-count",
            params=self._profile(actor),
            headers=self._auth(actor),
        )

    async def webhook(self) -> None:
        """A signed `message.new` from Stream for a conversation the load made."""
        found = self._opened()
        if found is None:
            return await self.token()
        channel_id, actor = found
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        event = {
            "type": "message.new",
            "cid": f"messaging:{channel_id}",
            "channel_type": "messaging",
            "channel_id": channel_id,
            "created_at": now,
            "user": {"id": actor.stream_id},
            "message": {
                "id": str(uuid.uuid4()),
                "text": "soak message",
                "type": "regular",
                "created_at": now,
                "user": {"id": actor.stream_id},
            },
        }
        raw = json.dumps(event).encode()
        headers = {
            "X-Signature": sign(raw, self.secrets.stream),
            "X-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        await self.client.request("webhook", "POST", "/api/chat/webhooks/stream", content=raw, headers=headers)

"""The soak's own PostgreSQL database: created fresh, read for convergence and checks, dropped at the end."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def new_name() -> str:
    return f"onecrew_soak_{secrets.token_hex(4)}"


def url_of(name: str) -> str:
    """DATABASE_URL as an operator writes it (the service maps it to asyncpg)."""
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def create(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Snapshot:
    """What the database says after the load: conversations, participants, outbox, directory and mirror."""

    conversations: dict[str, dict] = field(default_factory=dict)  # channel_id -> row
    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # channel_id -> stream ids
    outbox: dict[str, int] = field(default_factory=dict)  # status -> count
    outbox_unfinished: list[dict] = field(default_factory=list)
    outbox_attempts: dict[str, int] = field(default_factory=dict)  # kind -> total attempts of done rows
    profiles: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # stream id -> (name, image)
    mirrored: set[str] = field(default_factory=set)
    not_ready: int = 0

    @property
    def settled(self) -> bool:
        """No outbox row left to run and every conversation ready."""
        return not self.outbox_unfinished and self.not_ready == 0


async def snapshot(name: str) -> Snapshot:
    """One read of everything the checks compare (a few queries, no lock)."""
    conn = await asyncpg.connect(url_of(name))
    try:
        snap = Snapshot()
        for row in await conn.fetch(
            "SELECT id, channel_id, conversation_type, name, pair_key, chat_status, stream_verified_at "
            "FROM conversation WHERE deleted_at IS NULL"
        ):
            snap.conversations[row["channel_id"]] = dict(row)
            if row["chat_status"] != "ready" or row["stream_verified_at"] is None:
                snap.not_ready += 1
        for row in await conn.fetch(
            "SELECT c.channel_id, p.participant_type, p.participant_id FROM conversation_participant p "
            "JOIN conversation c ON c.id = p.conversation_id WHERE c.deleted_at IS NULL"
        ):
            snap.members[row["channel_id"]].add(f"onecrew_{row['participant_type']}_{row['participant_id']}")
        for row in await conn.fetch("SELECT status, count(*) AS n FROM outbox_message GROUP BY status"):
            snap.outbox[row["status"]] = row["n"]
        snap.outbox_unfinished = [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, kind, status, attempts, next_attempt_at, last_error FROM outbox_message "
                "WHERE status <> 'done' ORDER BY id"
            )
        ]
        for row in await conn.fetch(
            "SELECT kind, sum(attempts) AS n FROM outbox_message WHERE status = 'done' GROUP BY kind"
        ):
            snap.outbox_attempts[row["kind"]] = int(row["n"] or 0)
        for row in await conn.fetch('SELECT id, name, image_url FROM "user"'):
            snap.profiles[f"onecrew_user_{row['id']}"] = (row["name"], row["image_url"])
        for row in await conn.fetch("SELECT id, name, logo_url FROM company"):
            snap.profiles[f"onecrew_company_{row['id']}"] = (row["name"], row["logo_url"])
        snap.mirrored = {r["stream_id"] for r in await conn.fetch("SELECT stream_id FROM stream_identity")}
        return snap
    finally:
        await conn.close()

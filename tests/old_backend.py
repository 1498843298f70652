"""Stream as the old backend left it, written straight into the emulator's state.

Straight into the state because the old backend made channel ids of up to ~115 characters
(`user_company-onecrew_company_<id>-onecrew_user_<id>`) that the emulator, like Stream's documented limit,
refuses to create today; existing ones must still be read, adopted and written to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from stream_emulator.state import Channel, Member, Message, Read, User

SECOND_NS = 1_000_000_000


def stream_user(emulator, stream_id: str, name: str, *, role: str = "user", image: str | None = None) -> None:
    """A Stream user the old backend upserted (possibly with role admin, or the placeholder name "User")."""
    with emulator.lock:
        user = User(stream_id, time.time_ns() - 3600 * SECOND_NS)
        user.role, user.name, user.image = role, name, image
        emulator.state.add_user(user)


@dataclass
class OldChannel:
    """A channel to seed: members in join order, messages as (sender, text, seconds ago), reads as seconds ago."""

    channel_id: str
    members: list[str]
    messages: list[tuple[str, str, int]] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)  # member -> read up to this many seconds ago
    name: str | None = None
    age_s: int = 3000


def seed_channel(emulator, spec: OldChannel) -> None:
    """Write the channel with its members, messages and read state (unread counts as Stream keeps them)."""
    now = time.time_ns()
    created = now - spec.age_s * SECOND_NS
    with emulator.lock:
        channel = Channel("messaging", spec.channel_id, spec.members[0] if spec.members else None, created)
        if spec.name:
            channel.custom["name"] = spec.name
        for member_id in spec.members:
            channel.members[member_id] = Member(
                member_id, created, role="owner" if member_id == spec.members[0] else "member"
            )
        for index, (sender, text, ago_s) in enumerate(sorted(spec.messages, key=lambda m: -m[2])):
            at = now - ago_s * SECOND_NS
            channel.messages.append(Message(f"{spec.channel_id[:40]}-m{index}", text, sender, at))
            channel.last_message_at = at
        for member_id in spec.members:
            read_at = now - spec.reads[member_id] * SECOND_NS if member_id in spec.reads else created
            unread = [m for m in channel.messages if m.created_at > read_at and m.user_id != member_id]
            last_id = next((m.id for m in reversed(channel.messages) if m.created_at <= read_at), None)
            channel.reads[member_id] = Read(read_at, last_id, len(unread))
        emulator.state.channels[channel.cid] = channel


def stream_unread_channels(emulator, stream_id: str) -> int:
    """How many channels Stream counts as unread for this user (what its unread API says)."""
    with emulator.lock:
        return sum(
            1
            for channel in emulator.state.channels.values()
            if stream_id in channel.members
            and (read := channel.reads.get(stream_id)) is not None
            and read.unread_messages
        )


@dataclass
class World:
    """The directory and the old backend's Stream: who is who, and which channel is which."""

    amr: str
    mona: str
    nour: str
    sat: str  # a company the old backend upserted with role admin
    lolo: str
    era1: str  # amr + mona, `onecrew_<uuid>`
    era3: str  # amr + sat, the newest of two channels for that pair
    era2: str  # amr + sat, older
    company_pair: str  # sat + lolo
    group: str  # amr, mona, nour: "Crew"
    stranger: str  # amr + an id the directory does not know
    broken: str  # members "0" and "1" (the old array-index bug)

    def stream(self, kind: str, entity_id: str) -> str:
        """The Stream user id."""
        return f"onecrew_{kind}_{entity_id}"


def old_channels(w: World) -> list[OldChannel]:
    """The channels the old backend left, with messages and read state."""
    amr, mona, nour = (w.stream("user", i) for i in (w.amr, w.mona, w.nour))
    sat, lolo = w.stream("company", w.sat), w.stream("company", w.lolo)
    return [
        OldChannel(w.era1, [amr, mona], [(amr, "hi Mona", 900), (mona, "hi Amr", 800)], reads={amr: 850}, age_s=5000),
        OldChannel(
            w.era3,
            [sat, amr],
            [(sat, "Welcome to the course", 300), (amr, "Thanks!", 200)],
            reads={sat: 250},
            age_s=2000,
        ),
        OldChannel(w.era2, [amr, sat], [(amr, "hello?", 1500)], reads={sat: 1400}, age_s=4000),
        OldChannel(w.company_pair, [sat, lolo], [(lolo, "Partnership?", 100)], age_s=1000),
        OldChannel(w.group, [amr, mona, nour], [(nour, "Shooting at 9", 50)], reads={amr: 10}, name="Crew", age_s=3000),
        OldChannel(
            w.stranger, [amr, w.stream("user", "00000000-0000-4000-8000-000000000001")], [(amr, "?", 60)], age_s=2500
        ),
        OldChannel(w.broken, ["0", "1"], age_s=2400),
    ]


async def build_world(session, emulator) -> World:
    """Fill the directory (direct inserts) and the emulator the way the old backend left Stream."""
    from tests.factories import add_company, add_user

    amr = await add_user(session, "Amr")
    mona = await add_user(session, "Mona")
    nour = await add_user(session, "Nour")
    sat = await add_company(session, "Sat Education", owner=amr)
    lolo = await add_company(session, "Lolo Academy", owner=nour)
    world = World(
        amr,
        mona,
        nour,
        sat,
        lolo,
        era1=f"onecrew_{'1' * 8}-2222-4333-8444-{'5' * 12}",
        era3=f"user_company-onecrew_company_{sat}-onecrew_user_{amr}",
        era2=f"user_company-{'3565728146948a62810a0ae483151108'}",
        company_pair=f"company_company-onecrew_company_{lolo}-onecrew_company_{sat}",
        group="group-old-crew",
        stranger=f"user_user-onecrew_user_{amr}-stranger",
        broken="conversation-0-1",
    )
    stream_user(emulator, world.stream("user", amr), "Amr")
    stream_user(emulator, world.stream("user", mona), "User")  # the old placeholder over her real profile
    stream_user(emulator, world.stream("user", nour), "Nour")
    stream_user(emulator, world.stream("company", sat), "Sat Education", role="admin")
    stream_user(emulator, world.stream("company", lolo), "Lolo Academy", role="admin")
    for spec in old_channels(world):
        seed_channel(emulator, spec)
    return world

"""`make bench` over real HTTP: the API and the emulator as their own processes, the database as its own server.

Per database: seed, start `onecrew-chat stream-emulator` and `onecrew-chat serve`, run every scenario at
concurrency 1, 16 and 64, then (PostgreSQL) the cheap scenarios again with `serve --workers 2`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path

import uvloop
from sqlalchemy import func, select, text

from bench import http_scenarios as s
from bench.harness import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, prepare_database
from bench.load import Target
from bench.processes import start_api, start_emulator, stream_calls
from onecrew_chat.db import make_engine
from onecrew_chat.identity import Identity
from onecrew_chat.models import StreamIdentity


def _api_env(database_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "STREAM_API_KEY": STREAM_KEY,
        "STREAM_API_SECRET": STREAM_SECRET,
        "STREAM_BASE_URL": emulator_url,
        "ONECREW_JWT_SECRET": JWT_SECRET,
        "ONECREW_SERVICE_TOKEN": SERVICE_TOKEN,
        # The outbox worker on, as in production: it sends the identities Stream did not take from the tokens'
        # batches. Provisioning is inline, so the other scenarios leave it nothing to do.
        "ONECREW_RUN_WORKER": "true",
        "ONECREW_RECONCILE_INTERVAL_S": "0",
        "ONECREW_DEBUG_ENDPOINTS": "true",
        "ONECREW_LOG_LEVEL": "error",
    }


async def _wait_for(database_url: str, left, what: str, timeout_s: float = 120.0) -> None:
    """Poll (bounded) until `left(conn)`, what is still missing, is 0; else fail saying how much of `what`."""
    engine = make_engine(url=database_url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            async with engine.connect() as conn:
                missing = await left(conn)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{missing} {what} after {timeout_s:g} s")
            await asyncio.sleep(0.2)  # polling interval of a bounded wait
    finally:
        await engine.dispose()


async def _mirrored(database_url: str, users: list[str], timeout_s: float = 120.0) -> None:
    """Wait until the mirror records every one of these users: Stream took their identities, which their tokens
    queued without waiting (sync/coalescer.py), and the next scenario finds them fresh."""
    ids = [Identity.user(user).stream_id for user in users]
    query = select(func.count()).select_from(StreamIdentity)

    async def left(conn) -> int:
        held = 0
        for start in range(0, len(ids), 1000):
            held += await conn.scalar(query.where(StreamIdentity.stream_id.in_(ids[start : start + 1000]))) or 0
        return len(ids) - held

    await _wait_for(database_url, left, f"of {len(ids)} identities not mirrored", timeout_s)


async def _outbox_drained(database_url: str, timeout_s: float = 120.0) -> None:
    """Wait until the worker has sent every queued identity, so the next scenario finds the identities mirrored
    and the worker idle."""
    pending = text("SELECT count(*) FROM outbox_message WHERE status = 'pending' AND kind = 'identity.sync'")

    async def left(conn) -> int:
        return await conn.scalar(pending) or 0

    await _wait_for(database_url, left, "identity.sync rows still pending", timeout_s)


WARM_UP = 20


def chosen(name: str, only: list[str]) -> bool:
    """Whether `--only` (substrings of scenario names; empty: all) selects this scenario."""
    return not only or any(part in name for part in only)


async def _all_scenarios(
    target: Target, kind: str, data: s.Data, base: int, say, database_url: str, only: list[str]
) -> list[dict]:
    rows: list[dict] = []

    async def measure(name: str, calls_for, after=None, warm=None) -> None:
        if not chosen(name, only):
            return
        # Unmeasured first requests of the same kind (`warm`; default: the first 20 of concurrency 1, for scenarios
        # that may repeat a request): the statements' first compile and prepare are not a request's cost.
        warm_up = warm if warm is not None else calls_for(1)[:WARM_UP]
        if warm_up:
            await target.run("warm-up", kind, 1, warm_up)
        for concurrency in s.CONCURRENCY:
            run = await target.run(name, kind, concurrency, calls_for(concurrency))
            rows.append(run.summary())
            say(rows[-1])
            if after is not None:
                await after(concurrency)

    floor = lambda c: s.floor(s.requests_for(c, base) * s.CHEAPEST)  # noqa: E731
    await measure(s.FLOOR, floor)  # first and last: the floor of the run is the mean of the two
    pairs = s.slices(data.pair_users, base)
    # The tokens queued their identities: the next measurement starts once Stream (and the mirror) holds them.
    new_tokens = "token: new identity (Stream's limits enforced)"
    await measure(new_tokens, lambda c: s.token(pairs[c]), after=lambda c: _mirrored(database_url, pairs[c]), warm=[])
    if not chosen(new_tokens, only):  # the scenarios below expect these people in Stream and the mirror already
        for concurrency in s.CONCURRENCY:
            await target.run("warm-up", kind, concurrency, s.token(pairs[concurrency]))
            await _mirrored(database_url, pairs[concurrency])
    await measure("token: identity fresh in mirror", lambda c: s.token(pairs[c]))
    new_pairs, existing = "create: new pair (identities mirrored)", "create: existing pair (other direction)"
    await measure(new_pairs, lambda c: s.create_pair(data, pairs[c]), warm=[])
    if chosen(existing, only) and not chosen(new_pairs, only):  # the pairs it opens are made first, unmeasured
        for concurrency in s.CONCURRENCY:
            await target.run("warm-up", kind, concurrency, s.create_pair(data, pairs[concurrency]))
    await measure(existing, lambda c: s.existing_pair(data, pairs[c]))
    rows += await _distant_creates(target, kind, data, base, say, database_url, only)
    name = f"create: {s.NEW_PEOPLE_PAIRS} pairs of new people (Stream's limits enforced)"
    if chosen(name, only):
        run = await target.run(name, kind, s.NEW_PEOPLE_CONCURRENCY, s.new_people_pairs(data))
        rows.append(run.summary())
        say(rows[-1])
    for size in (100, 1000):  # a warm-up group mirrors the members once; then every group is new
        if not chosen(f"create: group of {size:,}", only):
            continue
        await target.run("warm-up", kind, 1, s.group(data, size, 1))
        await measure(
            f"create: group of {size:,}", lambda c, size=size: s.group(data, size, s.group_requests(c, size)), warm=[]
        )
    for size in (s.LIST_SMALL, s.LIST_LARGE):
        await measure(
            f"list: page 1 of {size:,}", lambda c, size=size: s.listing(data.listers[size], s.requests_for(c, base))
        )
    await measure(
        f"unread-count: {s.UNREAD_SIZE:,} conversations (cached)",
        lambda c: s.unread(data, s.requests_for(c, base) * s.CHEAPEST),
    )
    senders = s.slices(data.reader_peers, base)
    # Warmed up with senders no measurement uses (a repeated event would be a duplicate, another path).
    warm_hooks = s.webhooks(data, data.reader_peers[-WARM_UP:])
    await measure("webhook: message.new", lambda c: s.webhooks(data, senders[c]), warm=warm_hooks)
    if data.wave_users and chosen("token: login wave", only):
        rows.append(await _login_wave(target, kind, data, database_url, say))
    await measure(s.FLOOR, floor)
    return rows


async def _distant_creates(
    target: Target, kind: str, data: s.Data, base: int, say, database_url: str, only: list[str]
) -> list[dict]:
    """New pairs of people (identities mirrored by a warm-up; no two pairs share anyone) with every Stream call
    held 80 ms, at concurrency 16, 64 and 256: the API's CPU per create while many Stream calls are in flight (its
    connection pool to Stream)."""
    name = f"create: new pair, Stream {s.DISTANT_LATENCY_MS:g} ms away"
    if not chosen(name, only):
        return []
    await target.run("warm-up", kind, 64, s.token(data.distant))
    await _outbox_drained(database_url)
    users = s.slices(data.distant, base, s.DISTANT_CONCURRENCY, per_request=2)
    faults = f"{target.emulator_url}/_emulator/faults"
    target.admin.post(faults, json={"latency_ms": s.DISTANT_LATENCY_MS}).raise_for_status()
    rows = []
    try:
        for concurrency in s.DISTANT_CONCURRENCY:
            rows.append((await target.run(name, kind, concurrency, s.user_pairs(users[concurrency]))).summary())
            say(rows[-1])
    finally:
        target.admin.post(faults, json={"latency_ms": 0}).raise_for_status()
    return rows


async def _login_wave(target: Target, kind: str, data: s.Data, database_url: str, say) -> dict:
    """10,000 new users ask for their first token at once, Stream's limits enforced: every answer, and the Stream
    calls until the last identity is in Stream and the mirror (the batches the tokens queued, any outbox rows)."""
    calls_before = stream_calls(target.admin, target.emulator_url)
    run = await target.run(
        f"token: login wave, {s.LOGIN_WAVE:,} new users (calls until all are in Stream)",
        kind,
        s.LOGIN_WAVE_CONCURRENCY,
        s.token(data.wave_users),
    )
    started = time.perf_counter()
    await _mirrored(database_url, data.wave_users, timeout_s=600.0)
    await _outbox_drained(database_url, timeout_s=600.0)
    run.stream_calls = stream_calls(target.admin, target.emulator_url) - calls_before
    summary = run.summary()
    summary["stream_calls"] = run.stream_calls
    summary["all_in_stream_after_s"] = round(run.seconds + time.perf_counter() - started, 1)
    say(summary)
    return summary


async def _workers_comparison(target: Target, kind: str, data: s.Data, base: int, say, only: list[str]) -> list[dict]:
    rows = []
    pairs = s.slices(data.pair_users, base)
    for name, calls_for in (
        (s.FLOOR, lambda c: s.floor(s.requests_for(c, base) * s.CHEAPEST)),
        ("token: identity fresh in mirror", lambda c: s.token(pairs[c])),
        ("create: existing pair (other direction)", lambda c: s.existing_pair(data, pairs[c])),
        (f"list: page 1 of {s.LIST_SMALL:,}", lambda c: s.listing(data.listers[s.LIST_SMALL], s.requests_for(c, base))),
        (
            f"unread-count: {s.UNREAD_SIZE:,} conversations (cached)",
            lambda c: s.unread(data, s.requests_for(c, base) * s.CHEAPEST),
        ),
    ):
        if not chosen(name, only):
            continue
        # Warmed up over 64 connections, so that every process compiles its statements and opens the database
        # connections the measurement at 64 needs (one process had opened them in the scenarios before).
        await target.run("warm-up", kind, 64, calls_for(64)[: 2 * 64])
        for concurrency in (16, 64):
            rows.append((await target.run(name, kind, concurrency, calls_for(concurrency))).summary())
            say(rows[-1])
    return rows


def with_floor(rows: list[dict]) -> list[dict]:
    """Each row with the floor of its run (`floor_cpu_ms_per_request`: the mean CPU per request of the bare route
    at the same concurrency and process count, measured first and last) and its CPU as a multiple of it."""
    floors: dict[tuple, list[float]] = {}
    for row in rows:
        if row["scenario"] == s.FLOOR and row["server_cpu_ms_per_request"]:
            key = (row["database"], row["workers"], row["concurrency"])
            floors.setdefault(key, []).append(row["server_cpu_ms_per_request"])
    for row in rows:
        found = floors.get((row["database"], row["workers"], row["concurrency"]))
        floor = round(sum(found) / len(found), 3) if found else None
        cpu = row["server_cpu_ms_per_request"]
        row["floor_cpu_ms_per_request"] = floor
        row["times_floor"] = round(cpu / floor, 2) if floor and cpu is not None else None
    return rows


def run_client(main: Coroutine[object, object, list[dict]]) -> list[dict]:
    """Run the load generator on uvloop, as the API runs: the client's CPU is taken from the cores it measures."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_database(
    kind: str, postgres_admin_url: str, base: int, workers: list[int], say, only: list[str] | None = None
) -> list[dict]:
    """Every scenario on one database (dropped afterwards)."""
    url, drop = prepare_database(kind, postgres_admin_url)
    rows: list[dict] = []
    try:
        say(f"{kind}: seeding ({s.LIST_LARGE:,} + {s.UNREAD_SIZE:,} conversations)")
        data = asyncio.run(s.seed(url, base))
        with tempfile.TemporaryDirectory(prefix="onecrew-bench-") as tmp:
            emulator, emulator_url = start_emulator(Path(tmp), STREAM_KEY, STREAM_SECRET)
            try:
                for count in workers:
                    api, api_url = start_api(Path(tmp), count, **_api_env(url, emulator_url))
                    target = Target(api, api_url, emulator, emulator_url, count, url if kind == "postgres" else None)
                    try:
                        if count == 1:
                            rows += run_client(_all_scenarios(target, kind, data, base, say, url, only or []))
                        else:
                            rows += run_client(_workers_comparison(target, kind, data, base, say, only or []))
                    finally:
                        target.close()
                        api.stop()
            finally:
                emulator.stop()
    finally:
        drop()
    return with_floor(rows)

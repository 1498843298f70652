"""Faults in the emulator (through its admin path) and `kill -9` of the API and the workers mid-load."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from soak.processes import Managed


@dataclass(frozen=True)
class FaultPlan:
    """What the emulator does wrong during the load."""

    error_rate: float = 0.20
    timeout_share: float = 0.05
    burst_every_s: float = 8.0
    burst_calls: int = 6
    burst_reset_s: float = 1.0
    latency_ms: float = 50.0
    jitter_ms: float = 250.0
    visibility_delay_ms: float = 4000.0
    hold_s: float = 5.0

    def static_spec(self) -> dict[str, Any]:
        """Latency, 5xx (a different status per operation family; QueryChannels' and UpdateUsers' 502 in a gateway's
        own words, not Stream's error envelope) and the visibility delay."""
        errors: dict[str, dict[str, Any]] = {"*": {"rate": self.error_rate, "status": 500}}
        for op, status in (("GetOrCreateChannel", 503), ("UpdateUsers", 502), ("UpdateUsersPartial", 504)):
            errors[op] = {"rate": self.error_rate, "status": status}
        for op in ("UpdateUsers", "QueryChannels"):
            errors[op] = {"rate": self.error_rate, "status": 502, "body": {"message": "Bad Gateway"}}
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "error_rates": errors,
            "visibility_delay_ms": self.visibility_delay_ms,
        }


@dataclass
class Kill:
    name: str
    generation: int  # the generation killed (its log is `<name>-<generation>.log`)
    wall: float  # time.time()
    at: float  # time.monotonic()
    back_at: float | None  # when it served again (API) or was restarted (worker)
    emulator_calls_before: int  # the emulator's request count when the kill happened


@dataclass
class KillLog:
    """The kills done so far; a request overlapping [kill, back + slack] was cut off or slowed by one."""

    kills: list[Kill] = field(default_factory=list)
    slack_s: float = 1.0

    def overlaps(self, start: float, end: float) -> bool:
        for kill in self.kills:
            back = (kill.back_at or time.monotonic()) + self.slack_s
            if start <= back and end >= kill.at:
                return True
        return False


class Emulator:
    """The emulator's admin path."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10.0)

    async def close(self) -> None:
        await self.http.aclose()

    async def faults(self, spec: dict[str, Any]) -> None:
        (await self.http.post("/_emulator/faults", json=spec)).raise_for_status()

    async def state(self) -> dict[str, Any]:
        response = await self.http.get("/_emulator/state")
        response.raise_for_status()
        return dict(response.json())

    async def calls(self) -> int:
        return int((await self.state())["requests"])

    async def request_log(self) -> list[dict[str, Any]]:
        response = await self.http.get("/_emulator/requests")
        response.raise_for_status()
        return list(response.json()["requests"])


async def drive_faults(emulator: Emulator, plan: FaultPlan, stop: asyncio.Event) -> dict[str, int]:
    """Until `stop`: every second, arm timeouts-after-write for `timeout_share` of the calls made in the last
    second; every `burst_every_s`, a 429 burst. Returns how many of each were armed."""
    armed = {"timeouts": 0, "bursts": 0}
    last_calls = await emulator.calls()
    last_burst = time.monotonic()
    credit = 0.0  # timeouts owed (fractions carry over, so 5 % holds at a few calls a second too)
    await emulator.faults(plan.static_spec())
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
        if stop.is_set():
            break
        state = await emulator.state()
        calls = int(state["requests"])
        pending = state["faults"]["timeout_after_write"].get("*", {}).get("remaining", 0)
        credit += (calls - last_calls) * plan.timeout_share
        holds = int(credit)
        credit -= holds
        last_calls = calls
        spec: dict[str, Any] = {}
        if holds:
            spec["timeout_after_write"] = {"*": {"count": pending + holds, "hold_s": plan.hold_s}}
            armed["timeouts"] += holds
        if time.monotonic() - last_burst >= plan.burst_every_s:
            spec["rate_limit_bursts"] = {"*": {"count": plan.burst_calls, "reset_in_s": plan.burst_reset_s}}
            armed["bursts"] += 1
            last_burst = time.monotonic()
        if spec:
            await emulator.faults(spec)
    return armed


async def kill_and_restart(target: Managed, emulator: Emulator, log: KillLog) -> Kill:
    """`kill -9` the process and start it again right away; the API counts as back once it serves."""
    calls = await emulator.calls()
    kill = Kill(target.name, target.generation, time.time(), time.monotonic(), None, calls)
    log.kills.append(kill)
    target.kill9()
    target.start()
    await asyncio.to_thread(target.wait_ready)
    kill.back_at = time.monotonic()
    return kill


async def run_kills(
    schedule: list[tuple[int, Managed]], done: list[int], emulator: Emulator, log: KillLog, stop: asyncio.Event
) -> None:
    """Kill each target once `done[0]` (finished requests) reaches its threshold."""
    for threshold, target in schedule:
        while done[0] < threshold and not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.05)
            except TimeoutError:
                pass
        if stop.is_set():
            return
        await kill_and_restart(target, emulator, log)

"""`make soak` (`python -m soak`): the service under faults and `kill -9`, then a check that Stream converged.

The Stream emulator, the API and two workers run as separate processes on loopback ports over a fresh PostgreSQL
database; 1,000 mixed requests go through keep-alive clients while the emulator fails and each process kind is
killed twice; then the faults stop, the soak waits for convergence and compares. Exit 1 on any failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from soak import checks, database, processes, report
from soak.chaos import Emulator, FaultPlan, KillLog, drive_faults, run_kills
from soak.client import AppClient, Tally
from soak.directory import Directory, seed
from soak.load import Load, Secrets

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.5


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="logical requests in the load")
    parser.add_argument("--concurrency", type=int, default=16, help="simultaneous clients")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--companies", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7, help="random seed of the directory and the request mix")
    parser.add_argument("--visibility-delay-ms", type=float, default=4000.0)
    parser.add_argument("--converge-timeout", type=float, default=240.0, help="seconds to wait for convergence")
    parser.add_argument("--keep", action="store_true", help="keep the database (and print its name)")
    return parser.parse_args(argv)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.dir = ROOT / "var" / "soak" / stamp
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = database.new_name()
        self.key, self.stream_secret = "soak-key", secrets.token_hex(16)
        self.secrets = Secrets(jwt=secrets.token_hex(32), service=secrets.token_hex(24), stream=self.stream_secret)
        self.state_file = self.dir / "emulator-state.json"
        emu_port, api_port = processes.free_port(), processes.free_port()
        self.emulator_url, self.api_url = f"http://127.0.0.1:{emu_port}", f"http://127.0.0.1:{api_port}"
        self.env = processes.service_env(
            dict(os.environ),
            DATABASE_URL=database.url_of(self.db),
            STREAM_API_KEY=self.key,
            STREAM_API_SECRET=self.stream_secret,
            STREAM_BASE_URL=self.emulator_url,
            ONECREW_JWT_SECRET=self.secrets.jwt,
            ONECREW_SERVICE_TOKEN=self.secrets.service,
            ONECREW_PROVISION_DEADLINE_S="3",
            ONECREW_STREAM_TIMEOUT_S="1",
            ONECREW_WORKER_POLL_S="0.5",
            ONECREW_LOG_FORMAT="json",
            ONECREW_LOG_LEVEL="info",
        )
        self.emulator_proc = processes.emulator(self.dir, emu_port, self.key, self.stream_secret, self.state_file)
        self.api = processes.api(self.dir, api_port, self.env)
        self.workers = [processes.worker(self.dir, name, self.env) for name in ("worker-a", "worker-b")]
        self.all = [self.emulator_proc, self.api, *self.workers]

    def say(self, message: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)

    async def run(self) -> bool:
        args = self.args
        await database.create(self.db)
        self.say(f"database {self.db} created; logs in {self.dir.relative_to(ROOT)}")
        processes.migrate(self.env)
        for managed in self.all:
            managed.start()
        for managed in self.all:
            await asyncio.to_thread(managed.wait_ready)
        self.say(f"emulator {self.emulator_url}, API {self.api_url}, 2 workers running")
        directory = Directory.generate(random.Random(args.seed), args.users, args.companies)
        await seed(self.api_url, self.secrets.service, directory)
        self.say(f"directory seeded: {args.users} users, {args.companies} companies with owners")

        emulator, kills, tally = Emulator(self.emulator_url), KillLog(), Tally()
        client = AppClient(self.api_url, tally, kills, args.concurrency)
        load = Load(client, directory, self.secrets, args.seed)
        n = args.requests
        schedule = [
            (int(n * 0.2), self.api),
            (int(n * 0.35), self.workers[0]),
            (int(n * 0.5), self.api),
            (int(n * 0.65), self.workers[1]),
        ]
        stop = asyncio.Event()
        plan = FaultPlan(visibility_delay_ms=args.visibility_delay_ms)
        faults_task = asyncio.create_task(drive_faults(emulator, plan, stop))
        kills_task = asyncio.create_task(run_kills(schedule, load.done, emulator, kills, stop))
        started = time.monotonic()
        self.say(f"load: {n} requests, {args.concurrency} clients, faults on, kills at {[t for t, _ in schedule]}")
        await load.run(n, args.concurrency)
        await kills_task
        stop.set()
        armed = await faults_task
        load_s = time.monotonic() - started
        await emulator.faults({"reset": True})
        at_stop = await database.snapshot(self.db)
        drift_at_stop = checks.drift(at_stop, checks.StreamState.read(self.state_file))
        self.say(
            f"load done in {load_s:.1f} s; faults off; waiting for convergence (at most {args.converge_timeout:g} s)"
        )
        converge_s, snap, stream = await self.converge(args.converge_timeout)
        self.say("converged" if converge_s is not None else "did not converge")

        records = await emulator.request_log()
        total_calls = await emulator.calls()
        await client.close()
        await emulator.close()
        events = checks.read_logs([p for m in self.all for p in m.logs])
        killed = {m.log_dir / f"{k.name}-{k.generation}.log" for k in kills.kills for m in self.all if m.name == k.name}

        out = report.Report()
        out.info("load duration", f"{load_s:.1f} s")
        out.info(
            "left when the faults stopped: outbox rows, not ready, drift",
            f"{len(at_stop.outbox_unfinished)}, {at_stop.not_ready}, "
            f"{len(drift_at_stop.missing_channels)} channels / {drift_at_stop.missing_members} members / "
            f"{len(drift_at_stop.stale_profiles)} profiles",
        )
        out.info("faults armed: timeouts after write / 429 bursts", f"{armed['timeouts']} / {armed['bursts']}")
        out.info(
            "kills (process, seconds until serving again)",
            [f"{k.name} {(k.back_at or k.at) - k.at:.1f}s" for k in kills.kills],
        )
        out.check(
            "kill -9 of the API / of a worker",
            f"{self.api.kills} / {sum(w.kills for w in self.workers)}",
            self.api.kills == 2 and sum(w.kills for w in self.workers) == 2,
        )
        out.info("emulator calls (request log kept)", f"{total_calls} ({len(records)})")
        crashed = [m.name for m in self.all if not m.alive()]
        out.check("processes that died on their own", crashed or 0, not crashed)
        report.client_side(out, tally, n)
        report.convergence(out, snap, stream, checks.drift(snap, stream), load.ack, converge_s)
        (self.dir / "emulator-requests.json").write_text(json.dumps(records), encoding="utf-8")
        (self.dir / "kills.json").write_text(json.dumps([vars(k) for k in kills.kills]), encoding="utf-8")
        calls = checks.channel_calls(records, snap)
        report.work_twice(
            out, checks.runs_twice(events, killed), calls, checks.operations(records), len(records) == total_calls
        )
        print(out.render(), flush=True)
        (self.dir / "report.txt").write_text(out.render() + "\n", encoding="utf-8")
        return out.passed

    async def converge(self, timeout_s: float) -> tuple[float | None, database.Snapshot, checks.StreamState]:
        """Poll the database and the emulator's state file until they agree and no work is left, or the deadline."""
        started = time.monotonic()
        while True:
            snap = await database.snapshot(self.db)
            stream = checks.StreamState.read(self.state_file)
            if snap.settled and checks.drift(snap, stream).none:
                return time.monotonic() - started, snap, stream
            if time.monotonic() - started > timeout_s:
                return None, snap, stream
            await asyncio.sleep(POLL_S)  # the polling interval of a condition with a deadline

    async def cleanup(self) -> None:
        for managed in reversed(self.all):
            managed.stop()
        if self.args.keep:
            self.say(f"kept database {self.db}")
        else:
            await database.drop(self.db)
            self.say(f"database {self.db} dropped")


async def main(argv: list[str]) -> int:
    soak = Soak(parse_args(argv))
    try:
        passed = await soak.run()
    finally:
        await soak.cleanup()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

"""The processes `make bench` measures over HTTP: the API (`onecrew-chat serve`) and the emulator
(`onecrew-chat stream-emulator`), each a subprocess on a loopback port, and their CPU time from /proc."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from sqlalchemy import text

from onecrew_chat.db import make_engine

COMMAND = str(Path(sys.executable).with_name("onecrew-chat"))
START_DEADLINE_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONECREW_", "STREAM_", "DATABASE_URL"))}
    env.update(values)
    return env


class Process:
    """A started command whose stdout is read line by line until a line matches `ready`."""

    def __init__(self, args: list[str], env: dict[str, str], ready: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        self.match = self._wait_for(re.compile(ready))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            del self.stderr[:-50]

    def _wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=START_DEADLINE_S)
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"no line matching {pattern.pattern!r} within {START_DEADLINE_S}s: {seen}") from None
            if line is None:
                raise RuntimeError(f"process ended (code {self.proc.wait()}): {seen} {self.stderr[-10:]}")
            seen.append(line)
            if match := pattern.search(line):
                return match

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the process and every process below it."""
        return tree_cpu_s(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end within the deadline."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=START_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # After the command name: state, ppid, ... utime is field 14 and stime 15 of the whole line (1-based).
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and of its live descendants (the API processes of `serve --workers N`)."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p))) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += children.get(pid, [])
    return total


async def database_cpu_s(database_url: str) -> tuple[dict[int, float], int]:
    """CPU seconds so far of each PostgreSQL server process serving this database (its pid from pg_stat_activity,
    its time from /proc: the server runs on this machine), and the sessions opened on it so far."""
    others = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    engine = make_engine(url=database_url)
    try:
        async with engine.connect() as conn:
            pids = (await conn.scalars(text(others))).all()
            sessions = await conn.scalar(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
    finally:
        await engine.dispose()
    return {pid: stat[1] for pid in pids if (stat := _stat(pid)) is not None}, int(sessions or 0)


def machine_cpu_s() -> tuple[float, float]:
    """(busy, busy + idle) CPU seconds of every core since boot, from /proc/stat: how busy the whole machine was
    between two readings, whoever kept it busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def start_emulator(workdir: Path, api_key: str, api_secret: str) -> tuple[Process, str]:
    """`onecrew-chat stream-emulator` with its admin path (for the request count) on a free port."""
    process = Process(
        [COMMAND, "stream-emulator", "--port", "0", "--enable-admin", "--api-key", api_key, "--api-secret", api_secret],
        _clean_env(),
        r"listening on (http://\S+)",
        workdir,
    )
    return process, process.match.group(1)


def start_api(workdir: Path, workers: int, **env: str) -> tuple[Process, str]:
    """`onecrew-chat serve --workers N` on a free port with the given settings."""
    process = Process(
        [COMMAND, "serve", "--port", "0", "--workers", str(workers)],
        _clean_env(ONECREW_DATA_DIR=str(workdir / "var"), **env),
        r"serving on (http://\S+)",
        workdir,
    )
    return process, process.match.group(1)


def stream_calls(client: httpx.Client, emulator_url: str) -> int:
    """Requests the emulator has answered so far (its admin path)."""
    return int(client.get(f"{emulator_url}/_emulator/state").json()["requests"])


def database_counters(client: httpx.Client, api_url: str) -> dict[str, int]:
    """The API process's SQL counters (GET /_debug/process; meaningful with one API process)."""
    return client.get(f"{api_url}/_debug/process").json()["data"]

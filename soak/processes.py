"""The soak's processes: the Stream emulator, the API and two workers, each started, killed and restarted by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
STOP_GRACE_S = 10.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 30.0) -> float:
    """Poll `url` until it answers 200 (a condition with a deadline); returns the seconds it took."""
    started = time.monotonic()
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() - started < deadline_s:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: the process exited with code {proc.returncode} before serving")
            try:
                if http.get(url).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {deadline_s:g} s")


@dataclass
class Managed:
    """One logical process (e.g. `worker-a`): its command, environment, current Popen and every generation's log."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    health_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0
    logs: list[Path] = field(default_factory=list)
    kills: int = 0

    def start(self) -> None:
        """Start a new generation, its output in `<name>-<generation>.log`."""
        self.generation += 1
        path = self.log_dir / f"{self.name}-{self.generation}.log"
        self.logs.append(path)
        with path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, deadline_s: float = 30.0) -> float:
        """Wait for the health URL (if any) to answer 200; the seconds it took."""
        if self.health_url is None or self.proc is None:
            return 0.0
        return wait_until_serving(self.health_url, self.proc, deadline_s)

    def kill9(self) -> None:
        """SIGKILL the current generation (by its pid) and reap it."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; the exit code (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            return proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def service_env(base: dict[str, str], **values: str) -> dict[str, str]:
    """The parent's environment without any ONECREW_/STREAM_/DATABASE_ setting, plus `values`."""
    env = {k: v for k, v in base.items() if not k.startswith(("ONECREW_", "STREAM_", "DATABASE_URL"))}
    env.update(values)
    return env


def emulator(log_dir: Path, port: int, key: str, secret: str, state_file: Path) -> Managed:
    """The Stream emulator with its admin path (faults are set later through it)."""
    argv = [
        str(BIN / "python"),
        "-m",
        "stream_emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        key,
        "--api-secret",
        secret,
        "--state-file",
        str(state_file),
        "--enable-admin",
    ]
    url = f"http://127.0.0.1:{port}/_emulator/state"
    return Managed("emulator", argv, service_env(dict(os.environ)), log_dir, health_url=url)


def api(log_dir: Path, port: int, env: dict[str, str]) -> Managed:
    """`onecrew-chat serve` with its embedded worker off."""
    argv = [str(BIN / "onecrew-chat"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Managed(
        "api", argv, env | {"ONECREW_RUN_WORKER": "false"}, log_dir, health_url=f"http://127.0.0.1:{port}/healthz"
    )


def worker(log_dir: Path, name: str, env: dict[str, str]) -> Managed:
    """`onecrew-chat worker` (no metrics port: two workers on one machine would clash on the default one)."""
    return Managed(name, [str(BIN / "onecrew-chat"), "worker"], env | {"ONECREW_WORKER_METRICS_PORT": "0"}, log_dir)


def migrate(env: dict[str, str]) -> None:
    """`onecrew-chat db upgrade` on the soak's database."""
    subprocess.run([str(BIN / "onecrew-chat"), "db", "upgrade"], env=env, check=True, capture_output=True)

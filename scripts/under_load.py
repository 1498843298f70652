"""Run a command while the machine is held at a load average of about N, then say how loaded it was and how long it took.

    python3 scripts/under_load.py [--load 10] [--] COMMAND [ARG...]
    make test-load                      # the whole suite (`make test`) at load 10
    make test-load LOAD=6 TEST_LOAD_CMD='.venv/bin/python -m pytest tests/api -x'

The load is N - (the load already there) busy-loop processes at nice 0, started before the command and topped up
every 15 s as the 1-minute load average drifts (so other work on the machine counts towards N rather than on top of
it). Each busy loop is this script run with --spin; all are stopped by their process id when the command ends,
also on Ctrl-C. Every 5 s the 1-minute load average is sampled; at the end one line gives its minimum, mean and
maximum over the run, the minutes the command took and its exit status, which is also this script's.
Standard library only, so it runs from any Python 3.11+.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

SAMPLE_EVERY_S = 5.0
TOP_UP_EVERY_S = 15.0


def spin() -> None:
    """Burn one core until killed."""
    while True:
        pass


class Load:
    """Busy-loop processes that hold the 1-minute load average near `target`."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.spinners: list[subprocess.Popen[bytes]] = []
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        # The load average lags: start with what is missing now, then adjust every TOP_UP_EVERY_S.
        self._add(max(0, round(self.target - os.getloadavg()[0])))
        self._thread.start()

    def _add(self, count: int) -> None:
        for _ in range(count):
            self.spinners.append(subprocess.Popen([sys.executable, __file__, "--spin"]))

    def _remove(self, count: int) -> None:
        for _ in range(min(count, len(self.spinners))):
            process = self.spinners.pop()
            process.kill()
            process.wait()

    def _run(self) -> None:
        last_top_up = time.monotonic()
        while not self._stop.wait(SAMPLE_EVERY_S):
            load = os.getloadavg()[0]
            self.samples.append(load)
            if time.monotonic() - last_top_up >= TOP_UP_EVERY_S:
                last_top_up = time.monotonic()
                # Adjust by half the gap: the 1-minute average moves slowly, a full correction overshoots.
                gap = self.target - load
                if gap >= 1:
                    self._add(int(gap / 2) or 1)
                elif gap <= -1:
                    self._remove(int(-gap / 2) or 1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._remove(len(self.spinners))


def main(argv: list[str]) -> int:
    if argv == ["--spin"]:
        spin()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=float, default=10.0, help="the 1-minute load average to hold (default 10)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run under load")
    load = Load(args.load)
    load.start()
    started = time.monotonic()
    process = subprocess.Popen(command)
    try:
        status = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        status = process.wait()
    finally:
        load.stop()
    minutes = (time.monotonic() - started) / 60
    samples = load.samples or [os.getloadavg()[0]]
    print(
        f"under_load: {' '.join(command)!r} exited {status} after {minutes:.1f} min; 1-minute load average "
        f"min {min(samples):.1f}, mean {sum(samples) / len(samples):.1f}, max {max(samples):.1f} "
        f"(target {args.load:g}, {os.cpu_count()} CPUs)",
        flush=True,
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

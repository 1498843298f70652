"""Run Stream's own Python SDK test suite (stream-chat-python's `stream_chat/tests`) against the emulator.

    .venv/bin/python scripts/stream_sdk_suite.py /tmp/stream-chat-python [-k EXPR] [--rate-limits]
        [--venv var/sdk-suite-venv]

The path is a checkout of the public GetStream/stream-chat-python repository (the published package
leaves its tests out; none of its code belongs in this repository). The script serves the emulator
on a free loopback port, runs that suite with the variables it reads (STREAM_KEY, STREAM_SECRET,
STREAM_HOST) pointing at it, and prints one line per test file: passed, failed, and "not emulated"
(a test that failed after calling a path the emulator does not serve). It then lists every failure of
a test that called only emulated operations: those are the emulator's bugs. Exit status 1 when there
is such a failure. Not part of `make test`: the suite is not ours and is fetched separately.

The suite needs the test tools its setup.py pins (pytest 8.1.1, pytest-asyncio <= 0.21.1; pytest 9
refuses its async fixtures), so it runs in a virtualenv of its own, made on first use with the
checkout installed into it (`--venv`, default `var/sdk-suite-venv`). The emulator runs in this
process; only the suite runs in that virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from stream_emulator import Emulator, EmulatorServer

KEY = "sdk-suite-key"
SECRET = "sdk-suite-secret-long-enough-for-hs256-signatures"

# A pytest plugin loaded into the suite's run: after each test it asks the emulator which calls the
# test made that the emulator does not serve (operation "Unknown"), then clears the log.
PLUGIN = """
import json, os, urllib.request
import pytest

BASE = os.environ["STREAM_HOST"] + "/_emulator/requests"
OUT = os.environ["SDK_SUITE_UNSERVED"]


def _call(method):
    request = urllib.request.Request(BASE, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # The suite's "incremental" classes xfail every test after the first failure; here each test
    # is run and counted on its own merit.
    if getattr(item.parent, "_previousfailed", None) is not None:
        item.parent._previousfailed = None
    _call("DELETE")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    unserved = sorted({r["method"] + " " + r["path"] for r in _call("GET")["requests"]
                       if r["operation"] == "Unknown"})
    with open(OUT, "a") as out:
        out.write(json.dumps({"test": item.nodeid, "unserved": unserved}) + "\\n")
"""


TEST_TOOLS = ["pytest==8.1.1", "pytest-asyncio<=0.21.1"]
# Tests that cannot run offline whatever the server: they are not run, and listed with the reason.
OFFLINE_ONLY_SKIPS = {
    "test_swap_http_client": "expects a ProxyError from an https proxy in front of Stream's "
    "production host; needs the internet",
}


def suite_python(venv: Path, source: Path) -> Path:
    """The suite's interpreter, in a virtualenv made (once) with the checkout and its test tools."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making {venv} for the suite (the checkout, {', '.join(TEST_TOOLS)})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source), *TEST_TOOLS], check=True)
    return python


def run(source: Path, expression: str | None, rate_limits: bool, venv: Path) -> int:
    tests = source / "stream_chat" / "tests"
    if not tests.is_dir():
        sys.exit(f"{tests} does not exist: give the path of a stream-chat-python checkout")
    python = suite_python(venv, source)
    emulator = Emulator(api_key=KEY, api_secret=SECRET, rate_limits=rate_limits)
    with tempfile.TemporaryDirectory() as scratch, EmulatorServer(emulator, enable_admin=True) as server:
        Path(scratch, "sdk_suite_probe.py").write_text(PLUGIN)
        junit = Path(scratch, "junit.xml")
        unserved_file = Path(scratch, "unserved.jsonl")
        closed = _closed_port()
        env = {
            **os.environ,
            "STREAM_KEY": KEY,
            "STREAM_SECRET": SECRET,
            "STREAM_HOST": server.base_url,
            "SDK_SUITE_UNSERVED": str(unserved_file),
            "PYTHONPATH": os.pathsep.join([str(source), scratch]),
            "STREAM_CHAT_TIMEOUT": "10",
            # Clients the suite builds without base_url go to the emulator too, never out.
            "STREAM_CHAT_URL": server.base_url,
            "HTTP_PROXY": f"http://127.0.0.1:{closed}",
            "HTTPS_PROXY": f"http://127.0.0.1:{closed}",
            "NO_PROXY": "127.0.0.1,localhost",
            # aiohttp's C parser renames x-ratelimit-* headers, so StreamChatAsync's
            # rate_limit() would be None whatever the server sends (docs/reference/stream-api.md#rate-limits).
            "AIOHTTP_NO_EXTENSIONS": "1",
        }
        offline = " and ".join(f"not {name}" for name in OFFLINE_ONLY_SKIPS)
        extra = ["-k", f"({expression}) and {offline}" if expression else offline]
        command = [
            str(python),
            "-m",
            "pytest",
            "stream_chat/tests",
            "-p",
            "sdk_suite_probe",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={junit}",
            *extra,
        ]
        print(f"emulator at {server.base_url}; running {' '.join(command[2:])} in {source}", flush=True)
        subprocess.run(command, cwd=source, env=env, stdout=subprocess.DEVNULL, check=False)
        unserved = {}
        if unserved_file.exists():
            for line in unserved_file.read_text().splitlines():
                row = json.loads(line)
                unserved[row["test"]] = row["unserved"]
        for name, reason in OFFLINE_ONLY_SKIPS.items():
            print(f"not run: {name} ({reason})")
        return report(ET.parse(junit), unserved)


def _closed_port() -> int:
    """A loopback port nothing listens on (a proxy that refuses, so nothing leaves the machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nodeid(case: ET.Element) -> str:
    module = case.get("classname", "")
    parts = module.split(".")
    # junit writes "stream_chat.tests.test_x.TestClass"; find where the module ends.
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if Path(path).name.startswith("test_"):
            return "::".join([path, *parts[cut:], case.get("name", "")])
    return f"{module}::{case.get('name')}"


def report(tree: ET.ElementTree, unserved: dict[str, list[str]]) -> int:
    per_file: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    bugs: list[tuple[str, str]] = []
    missing: dict[str, set[str]] = defaultdict(set)
    not_emulated: list[tuple[str, list[str]]] = []
    for case in tree.iter("testcase"):
        nodeid = _nodeid(case)
        path = nodeid.split("::", 1)[0]
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif failure is None:
            outcome = "passed"
        elif unserved.get(nodeid):
            outcome = "not emulated"
            not_emulated.append((nodeid, unserved[nodeid]))
            for call in unserved[nodeid]:
                missing[call.split(" ", 1)[0] + " " + _shape(call.split(" ", 1)[1])].add(path)
        else:
            outcome = "failed"
            bugs.append((nodeid, (failure.get("message") or "").splitlines()[0][:300]))
        per_file[path][outcome] += 1
    totals: dict[str, int] = defaultdict(int)
    print(f"\n{'file':58} {'passed':>7} {'failed':>7} {'not emulated':>13} {'skipped':>8}")
    for path in sorted(per_file):
        counts = per_file[path]
        for key, value in counts.items():
            totals[key] += value
        print(f"{path:58} {counts['passed']:7} {counts['failed']:7} {counts['not emulated']:13} {counts['skipped']:8}")
    print(f"{'total':58} {totals['passed']:7} {totals['failed']:7} {totals['not emulated']:13} {totals['skipped']:8}")
    if not_emulated:
        print("\ntests of operations the emulator does not serve (the paths they called):")
        for nodeid, calls in not_emulated:
            shapes = sorted({c.split(" ", 1)[0] + " " + _shape(c.split(" ", 1)[1]) for c in calls})
            print(f"  {nodeid}: {', '.join(shapes)}")
    if missing:
        print("\npaths the emulator does not serve, called by the tests counted as not emulated:")
        for call in sorted(missing):
            print(f"  {call}")
    if bugs:
        print("\nfailed although every call they made is emulated:")
        for nodeid, message in bugs:
            print(f"  {nodeid}\n      {message}")
    return 1 if bugs else 0


def _shape(path: str) -> str:
    """A path with its ids replaced by {}, so the list of unserved paths stays short."""
    known = {
        "channels",
        "users",
        "messages",
        "members",
        "app",
        "api",
        "v2",
        "chat",
        "query",
        "read",
        "unread",
        "replies",
        "reactions",
        "tasks",
        "blocklists",
        "commands",
        "channeltypes",
        "devices",
        "moderation",
        "imports",
        "campaigns",
        "segments",
        "drafts",
        "reminders",
        "threads",
        "export_channels",
        "export",
        "search",
        "og",
        "polls",
        "uploads",
        "permissions",
        "roles",
        "rate_limits",
        "check_push",
        "check_sqs",
        "check_sns",
        "stats",
        "team_usage_stats",
        "truncate",
        "hide",
        "show",
        "mute",
        "unmute",
        "ban",
        "flag",
        "unflag",
        "query_banned_users",
        "guest",
        "message",
        "action",
        "translate",
        "undelete",
        "draft",
        "live_locations",
        "push_preferences",
        "delivered",
        "channel_batch_updater",
        "history",
        "pin",
        "unpin",
        "file",
        "image",
        "events",
        "event",
        "members_batch",
        "mark_delivered",
    }
    return "/".join(p if p in known or not p else "{}" for p in path.split("/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a stream-chat-python checkout")
    parser.add_argument("-k", dest="expression", help="only tests matching this pytest -k")
    parser.add_argument(
        "--rate-limits", action="store_true", help="enforce Stream's rate limits (off: the suite makes bursts of calls)"
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "var" / "sdk-suite-venv",
        help="the suite's own virtualenv (made on first use)",
    )
    args = parser.parse_args()
    sys.exit(run(args.source.resolve(), args.expression, args.rate_limits, args.venv.resolve()))


if __name__ == "__main__":
    main()

"""One emulator server per test session, wiped before every test, and the four SDK clients."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from getstream import AsyncStream, Stream
from stream_chat import StreamChat, StreamChatAsync

from stream_emulator import Emulator, EmulatorServer
from tests.support import serve_in_background

KEY = "emulator-key"
SECRET = "emulator-secret-that-is-long-enough-for-hs256"
NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """The node binary, with the npm stream-chat version package.json pins installed into
    tests/emulator/node/node_modules (ignored by git); skips, saying why, without node or npm or
    when the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to drive the npm stream-chat SDK")
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["stream-chat"]
    installed = NODE_DIR / "node_modules" / "stream-chat" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        try:
            subprocess.run(
                [npm, "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                check=True,
                timeout=300,
                capture_output=True,
                text=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            pytest.skip(f"npm install stream-chat@{wanted} failed: {str(detail)[-500:]}")
    return node


@pytest.fixture(scope="session")
def _served() -> Iterator[tuple[Emulator, EmulatorServer]]:
    emulator = Emulator(api_key=KEY, api_secret=SECRET)
    with EmulatorServer(emulator, enable_admin=True) as server:
        yield emulator, server


@pytest.fixture
def emu(_served: tuple[Emulator, EmulatorServer]) -> Emulator:
    """The served emulator, empty and fault-free."""
    emulator = _served[0]
    emulator.reset()
    return emulator


@pytest.fixture
def base_url(_served: tuple[Emulator, EmulatorServer], emu: Emulator) -> str:
    """Where the emulator listens."""
    return _served[1].base_url


@pytest.fixture
def gs(base_url: str) -> Iterator[Stream]:
    """getstream's sync client, pointed at the emulator."""
    client = Stream(api_key=KEY, api_secret=SECRET, base_url=base_url, timeout=30.0)
    yield client
    client.close()


@pytest.fixture
async def ags(base_url: str):
    """getstream's async client."""
    client = AsyncStream(api_key=KEY, api_secret=SECRET, base_url=base_url, timeout=30.0)
    yield client
    await client.aclose()


@pytest.fixture
def sc(base_url: str) -> StreamChat:
    """stream-chat's sync client."""
    return StreamChat(KEY, SECRET, base_url=base_url, timeout=30.0)


@pytest.fixture
async def asc(base_url: str):
    """stream-chat's async client."""
    async with StreamChatAsync(KEY, SECRET, base_url=base_url, timeout=30.0) as client:
        yield client


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        length = int(self.headers.get("content-length", 0))
        self.server.received.append((dict(self.headers), self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_url() -> Iterator[str]:
    """A local HTTP receiver for webhook deliveries."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    serve_in_background(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """getstream fills a missing required field with None and only warns; here that fails the
    test, so every v2 response is proven to carry every field getstream's models require."""
    strict = pytest.mark.filterwarnings("error:Missing value of non-optional type:RuntimeWarning")
    # Some tests sign with short secrets on purpose; PyJWT's advice about that is noise here.
    short_keys = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    for item in items:
        if "tests/emulator" in str(item.fspath):
            item.add_marker(strict)
            item.add_marker(short_keys)

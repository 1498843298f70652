"""TCP_NODELAY on the connections `serve` and `stream-emulator` accept (Nagle + delayed ACK = ~40 ms a response).

Each server is built the way its command builds it (the same socket and uvicorn settings), served on a loopback
port, and asked several requests over one keep-alive connection; then the server side of that connection is
asked for its TCP_NODELAY option. Deterministic: no timing is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx
import uvicorn

from stream_emulator import Emulator
from tests.conftest import make_settings
from tests.support import STREAM_KEY, STREAM_SECRET

DEADLINE_S = 30.0


class _Thread:
    """A uvicorn server on its own event loop in a background thread."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.started.set()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(main())

    def accepted_nodelay(self) -> list[int]:
        """TCP_NODELAY of every connection the server holds open, read on the server's loop."""

        async def read() -> list[int]:
            return [
                protocol.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for protocol in self.server.server_state.connections
            ]

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(DEADLINE_S)


@contextlib.contextmanager
def serving(config: uvicorn.Config, sock: socket.socket) -> Iterator[tuple[_Thread, str]]:
    running = _Thread(config, sock)
    running.thread.start()
    try:
        assert running.started.wait(DEADLINE_S)
        yield running, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        running.server.should_exit = True
        running.thread.join(DEADLINE_S)
        sock.close()


def _keep_alive_requests(base_url: str, path: str, running: _Thread, **kwargs) -> list[int]:
    with httpx.Client(base_url=base_url, timeout=DEADLINE_S) as client:
        for _ in range(5):
            assert client.get(path, **kwargs).status_code == 200
        options = running.accepted_nodelay()  # while the keep-alive connection is still open
    assert len(options) == 1, options  # the five requests shared one connection
    return options


def test_serve_sets_tcp_nodelay_on_keep_alive_connections(sqlite_only_url, emulator_server):
    from onecrew_chat.cli.local_instance import listen_socket
    from onecrew_chat.cli.serve import uvicorn_config

    settings = make_settings(sqlite_only_url, emulator_server.base_url)
    with serving(uvicorn_config(settings), listen_socket("127.0.0.1", 0)) as (running, base_url):
        options = _keep_alive_requests(base_url, "/healthz", running)
    assert all(option != 0 for option in options), options


def test_stream_emulator_command_sets_tcp_nodelay_on_keep_alive_connections():
    from stream_emulator.cli import uvicorn_config
    from stream_emulator.server import listening_socket

    emulator = Emulator(api_key=STREAM_KEY, api_secret=STREAM_SECRET)
    with serving(uvicorn_config(emulator, enable_admin=True), listening_socket("127.0.0.1", 0)) as (running, base_url):
        options = _keep_alive_requests(base_url, "/_emulator/state", running)
    assert all(option != 0 for option in options), options

"""EmulatorServer: the emulator served by uvicorn on a background thread, for tests and `serve`."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn

from .app import EmulatorApp
from .emulator import Emulator

START_TIMEOUT_S = 10.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (0 = a free port) whose accepted connections get TCP_NODELAY.

    IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on connections accepted by a socket whose proto says
    TCP; with proto 0 Nagle holds each response body back for the client's delayed ACK (~40 ms per call on a
    keep-alive connection). The option is set on the listening socket too (Linux copies it to accepted ones).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Listening from here: the address printed next is connectable at once (connections wait in the backlog
        # until the server accepts them), instead of refused until uvicorn starts serving.
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn.Server that says when it is listening."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready.set()

    def install_signal_handlers(self) -> None:
        # Signals belong to the main thread's program, not to this background server.
        pass


class EmulatorServer:
    """Serves an Emulator on host:port (port 0 = a free one) until stopped; a context manager."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0, enable_admin: bool = False) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.enable_admin = enable_admin
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """http://host:port of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start serving; returns base_url once the port accepts connections."""
        if self._thread is not None:
            return self.base_url
        self.emulator.load()
        sock = listening_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            EmulatorApp(self.emulator, enable_admin=self.enable_admin),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            loop="asyncio",
            # The client SDKs' /connect WebSocket (the websockets package is a runtime dependency).
            ws="websockets-sansio",
        )
        ready = threading.Event()
        self._server = _Server(config, ready)
        self._thread = threading.Thread(target=self._run, name="stream-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"stream emulator did not start within {START_TIMEOUT_S} s")
        with socket.create_connection((self.host, self.port), timeout=START_TIMEOUT_S):
            pass
        return self.base_url

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.emulator.flush()

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

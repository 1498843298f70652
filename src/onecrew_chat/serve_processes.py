"""`serve --workers N`: N API processes accepting on one shared socket, supervised by the `serve` process.

The parent binds the socket (TCP_NODELAY, see onecrew_chat.listening), prepares the database and, in embedded
mode, keeps the Stream emulator running; each child is a fresh interpreter (multiprocessing "spawn", so no
event loop or pool is copied by fork) that inherits the socket and serves the app on it. The kernel hands each
new connection to whichever process accepts first. The outbox worker (and its periodic reconciler) runs in
child 0 only, so exactly one worker runs, or none when ONECREW_RUN_WORKER=false; child 0 also registers the
embedded webhook and prints where everything is.

SIGINT/SIGTERM to the parent stops every child gracefully (SIGTERM, then SIGKILL after a grace period); a
child that dies on its own is started again, unless it died within its first seconds (a crash loop: then
everything stops with exit code 1).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from onecrew_chat.config import Settings
from onecrew_chat.logging import configure_logging, get_logger

log = get_logger(__name__)

STOP_GRACE_S = 15.0
# A child that ends sooner than this after its start is crashing, not dying of old age: do not restart it.
CRASH_LOOP_S = 5.0


def _child(settings: Settings, sock: socket.socket, index: int, base_url: str, embedded_stream: bool,
           dev_secret: bool) -> None:
    """One API process (the target of a spawned child)."""
    from onecrew_chat import server

    configure_logging(settings.log_format, settings.log_level)
    if index > 0:
        settings = settings.model_copy(update={"run_worker": False})

    async def on_ready() -> None:
        log.info("serve.process_ready", index=index, pid=os.getpid())
        if index == 0:
            await server.ready_hook(settings, base_url, embedded_stream=embedded_stream, dev_secret=dev_secret)

    asyncio.run(server.serve_socket(settings, sock, on_ready))


class Supervisor:
    """Starts the children, restarts one that dies, stops them all on SIGINT/SIGTERM."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int, base_url: str, *, embedded_stream: bool,
                 dev_secret: bool) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._args = (settings, sock)
        self._extra = (base_url, embedded_stream, dev_secret)
        self._children: dict[int, tuple[BaseProcess, float]] = {}
        self._count = count
        self._wake_read, self._wake_write = os.pipe()
        self.stopping = False
        self.failed = False

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_child, args=(*self._args, index, *self._extra), name=f"onecrew-chat-api-{index}", daemon=False
        )
        process.start()
        self._children[index] = (process, time.monotonic())
        log.info("serve.process_started", index=index, pid=process.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        os.write(self._wake_write, b"x")

    def run(self) -> int:
        """Run until a stop signal (exit code 0) or a crash loop (1)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self._count):
                self._start(index)
            while not self.stopping:
                sentinels = {process.sentinel: index for index, (process, _) in self._children.items()}
                ready = wait([self._wake_read, *sentinels])
                for handle in ready:
                    if handle in sentinels and not self.stopping:
                        self._replace(sentinels[handle])
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_read)
            os.close(self._wake_write)
        return 1 if self.failed else 0

    def _replace(self, index: int) -> None:
        process, started = self._children[index]
        process.join()
        log.error("serve.process_died", index=index, pid=process.pid, exit_code=process.exitcode)
        if time.monotonic() - started < CRASH_LOOP_S:
            log.error("serve.crash_loop", index=index)
            self.failed = self.stopping = True
            return
        self._start(index)

    def _stop_all(self) -> None:
        processes = [process for process, _ in self._children.values()]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def run_processes(settings: Settings, sock: socket.socket, count: int, base_url: str, *, embedded_stream: bool,
                  dev_secret: bool) -> None:
    """Serve with `count` API processes until SIGINT/SIGTERM; SystemExit(1) after a crash loop."""
    supervisor = Supervisor(settings, sock, count, base_url, embedded_stream=embedded_stream, dev_secret=dev_secret)
    if supervisor.run() != 0:
        raise SystemExit(1)

"""`serve --workers N`: N API processes serving one port, supervised by the `serve` process.

The parent (`onecrew_chat.cli.serve.serve`) binds the socket (TCP_NODELAY, see onecrew_chat.cli.local_instance),
prepares the database and, in embedded mode, keeps the Stream emulator running, and gives the target each
child runs (`server.serve_child`); each child is a fresh interpreter (multiprocessing "spawn", so no
event loop or pool is copied by fork) that serves the app on the port. On Linux (`shared_port`) every child binds
a listening socket of its own with SO_REUSEPORT and the kernel spreads new connections over them; the parent keeps
the port with a socket that never listens. With one shared accepting socket, whichever process accepted first got
the connection, and a burst of keep-alive connections could all land in one process. Elsewhere the children
inherit the parent's socket and accept on it. The outbox worker (and its periodic reconciler) runs in
child 0 only, so exactly one worker runs, or none when ONECREW_RUN_WORKER=false.

Each child tells the parent over a pipe once it accepts connections; the parent says it is serving (registers the
embedded webhook, prints where everything is) only when every child has, so a client that connects on that line
is answered by any of them, not only by whichever started first.

SIGINT/SIGTERM to the parent stops every child gracefully (SIGTERM, then SIGKILL after a grace period); a
child that dies on its own is started again, unless it died within its first seconds (a crash loop: then
everything stops with exit code 1).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from onecrew_chat.cli.local_instance import REUSE_PORT, bind_listening_socket
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

# What a child serves on: the parent's socket (inherited), or the address to bind a socket of its own (SO_REUSEPORT).
Listener = socket.socket | tuple[str, int]

STOP_GRACE_S = 15.0
# A child that ends sooner than this after its start is crashing, not dying of old age: do not restart it.
CRASH_LOOP_S = 5.0
# Every child accepts connections within this long of the start, or `serve` gives up (exit code 1): a start that
# hangs (a database that never answers) is refused, not left half up. Generous, for a loaded machine.
READY_DEADLINE_S = 120.0


class Supervisor:
    """Starts the children, restarts one that dies, stops them all on SIGINT/SIGTERM.

    Child `index` runs `target(sock, index, ready, *args)` in a fresh interpreter and calls `ready.send(index)` once
    it accepts connections; `target` is a module-level function (spawn pickles it by name) and `args` are picklable.
    `on_ready` runs in this process once, when every child has said so.
    """

    def __init__(
        self,
        target: Callable[..., None],
        sock: Listener,
        count: int,
        args: tuple[Any, ...],
        on_ready: Callable[[], None],
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._sock = sock
        self._args = args
        self._children: dict[int, tuple[BaseProcess, float]] = {}
        self._count = count
        self._wake_read, self._wake_write = os.pipe()
        self._ready_read, self._ready_write = self._context.Pipe(duplex=False)
        self._ready: set[int] = set()
        self._on_ready: Callable[[], None] | None = on_ready
        self.stopping = False
        self.failed = False

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=self._target,
            args=(self._sock, index, self._ready_write, *self._args),
            name=f"onecrew-chat-api-{index}",
            daemon=False,
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
            deadline = time.monotonic() + READY_DEADLINE_S
            while not self.stopping:
                sentinels = {process.sentinel: index for index, (process, _) in self._children.items()}
                timeout = None if self._on_ready is None else max(0.0, deadline - time.monotonic())
                ready = wait([self._wake_read, self._ready_read, *sentinels], timeout)
                if self._ready_read in ready:
                    self._ready.add(self._ready_read.recv())
                    self._announce_once_all_ready()
                for handle in ready:
                    if handle in sentinels and not self.stopping:
                        self._replace(sentinels[handle])
                if self._on_ready is not None and not ready:
                    log.error("serve.start_timeout", waited_s=READY_DEADLINE_S, ready=sorted(self._ready))
                    self.failed = self.stopping = True
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._ready_read.close()
            self._ready_write.close()
        return 1 if self.failed else 0

    def _announce_once_all_ready(self) -> None:
        # A restarted child says it again: only the first time every child is ready counts.
        if self._on_ready is not None and len(self._ready) == self._count:
            on_ready, self._on_ready = self._on_ready, None
            on_ready()

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


def shared_port(sock: socket.socket) -> tuple[socket.socket, Listener]:
    """(the socket the parent keeps, what each child serves on) for a bound, not yet listening socket.

    On Linux the bound socket is swapped for one with SO_REUSEPORT at the same address (it keeps the port for the
    parent and never listens), and each child is given the address to bind its own; elsewhere, the socket itself.
    """
    if not REUSE_PORT:
        return sock, sock
    host, port = sock.getsockname()[:2]
    sock.close()
    holder = bind_listening_socket(host, port, reuse_port=True)
    return holder, (host, port)


def listening(listener: Listener) -> socket.socket:
    """The socket a child serves on: the inherited one, or one of its own bound with SO_REUSEPORT."""
    if isinstance(listener, socket.socket):
        return listener
    return bind_listening_socket(*listener, reuse_port=True)


def run_processes(
    target: Callable[..., None], sock: Listener, count: int, args: tuple[Any, ...], on_ready: Callable[[], None]
) -> None:
    """Serve with `count` processes running `target(sock, index, ready, *args)` until SIGINT/SIGTERM, `on_ready`
    run once all of them accept connections; SystemExit(1) after a crash loop or a start past READY_DEADLINE_S."""
    if Supervisor(target, sock, count, args, on_ready).run() != 0:
        raise SystemExit(1)

"""What keeps local `serve` processes apart: a lock on the data folder, the listening socket, pasteable commands.

- Two embedded instances on one data folder would share the SQLite file and, worse, overwrite each other's
  emulator state file. The first one holds an exclusive flock on ONECREW_DATA_DIR/serve.lock for its whole life;
  a second one is refused with a line that says how to run it beside the first.
- The listening socket is bound here (not by uvicorn), so a port clash is one sentence that says how to pick another,
  and it is made for TCP: asyncio sets TCP_NODELAY on an accepted connection only when the listening socket says
  its protocol is TCP (`proto == IPPROTO_TCP`). A socket made with protocol 0 (what `uvicorn.Config.bind_socket`
  makes) leaves Nagle's algorithm on, and Nagle together with the client's delayed ACK holds each response on a
  reused (keep-alive) connection for about 40 ms. So the socket is made with IPPROTO_TCP, and the option is also
  set on the listening socket itself (Linux copies it to the connections it accepts).
- Commands printed for the developer name the executable as it can be run from any folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

LOCK_FILE = "serve.lock"
# Linux spreads the connections of one port over every listening socket bound to it with SO_REUSEPORT (by a hash
# of the connection); elsewhere the option means something else (BSD: the last socket takes all), so it is not used.
REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def bind_listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port (port 0 = any free one), not yet listening; raises OSError when refused.

    `reuse_port` (Linux only, see REUSE_PORT): other sockets with the option may bind the same port, and the kernel
    gives each new connection to one of those listening."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class InstanceRefused(Exception):
    """Another instance holds the data folder, or the address cannot be listened on; the message says what to do."""


class DataDirLock:
    """An exclusive, non-blocking flock on ONECREW_DATA_DIR/serve.lock, released when the process ends."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise InstanceRefused naming the holder's pid."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InstanceRefused(
                f"cannot use the data folder {self.path.parent.resolve()}: {exc.strerror or type(exc).__name__}; "
                "set ONECREW_DATA_DIR to a folder this user may write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            folder = self.path.parent.resolve()
            raise InstanceRefused(
                f"another onecrew-chat serve (pid {holder}) is using the data folder {folder}; stop it, or give this "
                f"one a folder and port of its own, e.g. `ONECREW_DATA_DIR=var2 make run PORT=8001`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the process ending does the same)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (as uvicorn binds it); InstanceRefused with the way out on a clash."""
    try:
        sock = bind_listening_socket(host, port)  # IPPROTO_TCP and TCP_NODELAY (see bind_listening_socket)
    except OSError as exc:
        other = free_port_after(host, port)
        if exc.errno == errno.EADDRINUSE:
            why = "the port is in use (another onecrew-chat, or another program)"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        else:
            why = exc.strerror or type(exc).__name__
        raise InstanceRefused(
            f"cannot listen on {host}:{port}: {why}; pick another port with `make run PORT={other}`, "
            f"`onecrew-chat serve --port {other}` or PORT={other} (0 picks a free one)"
        ) from None
    return sock


# How many ports after a refused one are tried for the hint (beyond them, the hint says 0: any free port).
FREE_PORT_SEARCH = 20


def free_port_after(host: str, port: int) -> int:
    """The first port after `port` that binds on `host` right now (0 when none of the next few does), for the
    hint of a refused one: suggesting `port + 1` sent the developer to a port that was just as taken."""
    start = port + 1 if 1024 <= port < 65535 else 8001
    for candidate in range(start, min(start + FREE_PORT_SEARCH, 65536)):
        try:
            bind_listening_socket(host, candidate).close()
        except OSError:
            continue
        return candidate
    return 0


def own_command() -> str:
    """How to run this same `onecrew-chat` from any folder: its name if it is on PATH, else its absolute path."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    on_path = shutil.which("onecrew-chat")
    if script is not None and script.name == "onecrew-chat" and script.exists():
        if on_path and Path(on_path).resolve() == script.resolve():
            return "onecrew-chat"
        return shlex.quote(str(script.absolute()))
    if on_path:
        return "onecrew-chat"
    return f"{shlex.quote(sys.executable)} -m onecrew_chat.cli"

"""What keeps local `serve` processes apart: a lock on the data folder, the listening socket, pasteable commands.

- Two embedded instances on one data folder would share the SQLite file and, worse, overwrite each other's
  emulator state file. The first one holds an exclusive flock on ONECREW_DATA_DIR/serve.lock for its whole life;
  a second one is refused with a line that says how to run it beside the first.
- The listening socket is bound here (not by uvicorn), so a port clash is one sentence that says how to pick another.
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

from onecrew_chat.cli.listening import bind_listening_socket

LOCK_FILE = "serve.lock"


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
        sock = bind_listening_socket(host, port)  # IPPROTO_TCP and TCP_NODELAY (see onecrew_chat.cli.listening)
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

"""The listening socket `serve` hands to uvicorn: TCP_NODELAY on it and on every connection it accepts.

asyncio sets TCP_NODELAY on an accepted connection only when the listening socket says its protocol is TCP
(`proto == IPPROTO_TCP`). A socket made with protocol 0 (what `uvicorn.Config.bind_socket` makes) leaves
Nagle's algorithm on, and Nagle together with the client's delayed ACK holds each response on a reused
(keep-alive) connection for about 40 ms. So the socket is made with IPPROTO_TCP, and the option is also set
on the listening socket itself (Linux copies it to the connections it accepts).
"""

from __future__ import annotations

import socket
import sys

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

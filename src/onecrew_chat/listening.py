"""The listening socket `serve` hands to uvicorn: TCP_NODELAY on it and on every connection it accepts.

asyncio sets TCP_NODELAY on an accepted connection only when the listening socket says its protocol is TCP
(`proto == IPPROTO_TCP`). A socket made with protocol 0 (what `uvicorn.Config.bind_socket` makes) leaves
Nagle's algorithm on, and Nagle together with the client's delayed ACK holds each response on a reused
(keep-alive) connection for about 40 ms. So the socket is made with IPPROTO_TCP, and the option is also set
on the listening socket itself (Linux copies it to the connections it accepts).
"""

from __future__ import annotations

import socket


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0 = any free one), not yet listening; raises OSError when refused."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock

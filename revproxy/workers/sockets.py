"""The supervisor's listening sockets, bound once and inherited by every worker.

Every worker adopts the same socket (``reactor.adoptStreamPort``), so they share ONE accept
queue: a connection waits for whichever worker accepts first, instead of being hashed at SYN
time to a worker that may be busy (SO_REUSEPORT's imbalance). The supervisor never accepts:
it does not register the sockets with its reactor.
"""

from __future__ import annotations

import socket
from typing import Dict, Tuple

from revproxy.server.listeners import ListenError
from revproxy.workers.endpoints import BindSpec

Key = Tuple[str, str]  # (role, description), as revproxy.server.listeners keys ports


class SharedSockets:
    """``key -> socket``; ``bind_all`` is all or nothing (ListenError names the endpoint)."""

    def __init__(self):
        self.sockets: Dict[Key, socket.socket] = {}

    def bind_all(self, wanted: Dict[Key, BindSpec]) -> None:
        try:
            for key, spec in wanted.items():
                self.sockets[key] = bind(spec, key[1])
        except ListenError:
            self.close()
            raise

    def fds(self) -> Dict[Key, Tuple[int, int]]:
        """``key -> (fd, family)`` of the bound sockets."""
        return {key: (sock.fileno(), sock.family) for key, sock in self.sockets.items()}

    def close(self) -> None:
        sockets, self.sockets = self.sockets, {}
        for sock in sockets.values():
            sock.close()


def bind(spec: BindSpec, description: str) -> socket.socket:
    """A listening, non-blocking socket for ``spec``; ListenError on failure."""
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(spec.address)
        sock.listen(spec.backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise ListenError(description, e.strerror or str(e)) from None
    return sock


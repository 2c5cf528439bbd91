"""Worker side: listeners made from the sockets inherited from the supervisor.

``adopters(reactor, spec)`` gives ``revproxy.server.listeners.ListenerSet`` one function per
inherited socket, keyed like its ports (``(role, description)``): called with the listener's
factory, it adopts the socket (``reactor.adoptStreamPort``: the accept queue stays shared with
the other workers) and returns the port. A TLS listener adopts its plain TCP socket and keeps
its TLS factory, exactly as when it listens itself.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

from revproxy.server.listeners import ListenError

log = Logger(namespace="revproxy.service")


def adopters(reactor, spec):
    return {(s.role, s.description): _adopter(reactor, s) for s in spec.listeners}


def _adopter(reactor, inherited):
    used = []

    def adopt(factory):
        if used:  # the fd was closed after the first adoption
            raise ListenError(inherited.description, "its inherited socket was closed; "
                                                     "restart to listen on it again")
        try:
            port = reactor.adoptStreamPort(inherited.fd, inherited.family, factory)
        except Exception as e:
            raise ListenError(inherited.description, "cannot adopt the inherited socket "
                                                     "(fd %d): %s" % (inherited.fd, e)) from None
        used.append(True)
        os.close(inherited.fd)  # the port holds its own duplicate
        log.info("listening on {addr} ({desc}, shared with the other workers)",
                 addr=port.getHost(), desc=inherited.description)
        return port

    return adopt

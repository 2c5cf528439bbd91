"""Worker side: listeners made from the sockets inherited from the supervisor.

``adopters(reactor, spec)`` gives ``revproxy.server.listeners.ListenerSet`` one function per
inherited socket, keyed like its ports (``(role, description)``): called with the listener's
factory, it adopts the socket (``reactor.adoptStreamPort``: the accept queue stays shared with
the other workers) and returns the port. A TLS listener adopts its plain TCP socket and keeps
its TLS factory, exactly as when it listens itself.

Fair accepts: Twisted's port accepts up to 100 connections per wake-up (more when it got them
all). On a queue shared by several processes that lets the first worker to wake take a whole
burst: 50 keep-alive connections opened at once all landed in one worker, the other stayed
idle (bench/workers.py). A ``SharedPort`` accepts ``ACCEPTS_PER_WAKEUP`` connection(s) per
wake-up and goes back to the reactor; every worker is woken while connections wait, so the
one that comes back first (the least busy) takes the next: the queue itself balances.
"""

from __future__ import annotations

import os

from twisted.internet import tcp
from twisted.logger import Logger

from revproxy.server.listeners import ListenError

log = Logger(namespace="revproxy.service")

ACCEPTS_PER_WAKEUP = 1


class SharedPort(tcp.Port):
    """A TCP port on a listening socket shared with other processes (see above)."""

    accepts_per_wakeup = ACCEPTS_PER_WAKEUP

    def doRead(self):
        self.numberAccepts = self.accepts_per_wakeup  # Twisted grows it after a full batch
        return tcp.Port.doRead(self)


def adopt_shared(reactor, fd, family, factory):
    """``reactor.adoptStreamPort`` with a ``SharedPort`` (the same two steps it takes)."""
    port = SharedPort._fromListeningDescriptor(reactor, fd, family, factory)
    port.startListening()
    return port


def adopters(reactor, spec):
    return {(s.role, s.description): _adopter(reactor, s) for s in spec.listeners}


def _adopter(reactor, inherited):
    used = []

    def adopt(factory):
        if used:  # the fd was closed after the first adoption
            raise ListenError(inherited.description, "its inherited socket was closed; "
                                                     "restart to listen on it again")
        try:
            port = adopt_shared(reactor, inherited.fd, inherited.family, factory)
        except Exception as e:
            raise ListenError(inherited.description, "cannot adopt the inherited socket "
                                                     "(fd %d): %s" % (inherited.fd, e)) from None
        used.append(True)
        os.close(inherited.fd)  # the port holds its own duplicate
        log.info("listening on {addr} ({desc}, shared with the other workers)",
                 addr=port.getHost(), desc=inherited.description)
        return port

    return adopt

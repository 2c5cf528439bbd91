"""The TLS listener: a ``TLSMemoryBIOFactory`` around the proxy's factory that takes the
contexts of the runtime current at each accept.

A kept listener therefore serves reloaded certificates to new connections while open ones
keep the contexts they started with. The wrapped factory builds the HTTP/1.1
``ClientConnection``; the negotiated ALPN protocol is ``transport.negotiatedProtocol`` (and
``peer.tls.alpn`` once the handshake is done): HTTP/2 plugs in as a wrapped factory that
dispatches on it.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from revproxy.netio import send_direct


@implementer(IOpenSSLServerConnectionCreator)
class CurrentContexts:
    """Creates each server ``SSL.Connection`` on the dispatch context of listener
    ``description`` in the runtime current now (``holder.current.tls``)."""

    def __init__(self, holder, description):
        self._holder = holder
        self._description = description

    def serverConnectionForTLS(self, tls_protocol):
        runtime = self._holder.current
        listener = runtime.tls.listener(self._description)
        connection = SSL.Connection(listener.dispatch_context(runtime.clock.seconds()), None)
        connection.set_app_data(tls_protocol)
        return connection


class DirectSendTLSProtocol(TLSMemoryBIOProtocol):
    """Twisted's TLS protocol, sending its ciphertext straight to the socket.

    Twisted writes each batch of ciphertext with ``transport.write``: the bytes are queued
    and epoll is asked to report writability (an ``epoll_ctl`` to add, a loop turn, another
    to remove) for every response. The plaintext already arrives batched once per reactor
    turn (``netio.Outbox``: HTTP/1.1 and HTTP/2 both write through it), so the ciphertext is
    sent at once, on the socket when the TCP transport has nothing queued, through
    ``transport.write`` otherwise (order and flow control stay Twisted's): the same rule as
    plain connections (``netio.send_direct``). For the same reason this is the plain
    ``TLSMemoryBIOProtocol``, not Twisted's default ``BufferingTLSTransport``, whose
    small-write aggregator would wait one more loop turn for writes already batched.
    Measured with bench/tls.py (keep-alive HTTPS, CPython, CPU per request, machine shared):
    92-101 µs with this class, 109-126 µs with Twisted's default.
    """

    def _flushSendBIO(self):
        try:
            data = self._tlsConnection.bio_read(2 ** 15)
        except SSL.WantReadError:
            return  # nothing in the send BIO now
        send_direct(self.transport, data)


class TLSListenerFactory(TLSMemoryBIOFactory):
    """TLS around ``wrapped`` (the listener's ``ProxyFactory``)."""

    noisy = False
    protocol = DirectSendTLSProtocol

    def __init__(self, holder, description, wrapped):
        TLSMemoryBIOFactory.__init__(self, CurrentContexts(holder, description), False, wrapped)

    def logPrefix(self):
        return "TLS"


"""A backend connection over TLS: ready once its handshake (and verification) succeeded.

``connect_tls(endpoint, creator, conn, clock)`` returns a Deferred that fires with ``conn``
after the handshake, or fails with ``TLSHandshakeFailed`` (saying which check failed) when
the connection ends before it; cancelling it aborts the connection. So a member whose
certificate does not verify fails the connect attempt, never a request already sent.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from revproxy.netio import QuietFactory
from revproxy.upstream.protocol import UpstreamConnection
from revproxy.upstream.tls import describe_failure


class TLSHandshakeFailed(Exception):
    """The TLS connection to a member ended before its handshake completed."""


@implementer(IHandshakeListener)
class TLSUpstreamConnection(UpstreamConnection):
    """An ``UpstreamConnection`` whose ``handshake`` Deferred fires with itself once TLS is
    established, or fails with ``TLSHandshakeFailed`` if the connection ends first."""

    def __init__(self, clock, parser_limits, owner):
        UpstreamConnection.__init__(self, clock, parser_limits, owner)
        self.handshake = Deferred(canceller=self._cancel_handshake)

    def handshakeCompleted(self):  # noqa: N802 (Twisted's name)
        d, self.handshake = self.handshake, None
        if d is not None:
            d.callback(self)

    def connectionLost(self, reason=None):
        UpstreamConnection.connectionLost(self, reason)
        d, self.handshake = self.handshake, None
        if d is not None:
            d.errback(TLSHandshakeFailed(describe_failure(reason)))

    def _cancel_handshake(self, d):
        self.handshake = None
        if self.transport is not None:
            self.transport.abortConnection()


class _PrefaceTLSProtocol(TLSMemoryBIOFactory.protocol):
    """Twisted's TLS client protocol that first writes its factory's ``preface`` in clear
    on the connection, before the handshake (a PROXY protocol header, as HAProxy sends it
    to ``ssl`` servers)."""

    def makeConnection(self, transport):  # noqa: N802 (Twisted's name)
        transport.write(self.factory.preface)
        TLSMemoryBIOFactory.protocol.makeConnection(self, transport)


class _PrefaceTLSFactory(TLSMemoryBIOFactory):
    protocol = _PrefaceTLSProtocol
    preface = b""


def tls_client_factory(creator, wrapped, clock, preface=b""):
    """A TLS client factory around ``wrapped`` with ``creator``'s settings; ``preface``
    (bytes): written in clear before the TLS handshake (nothing when empty)."""
    if preface:
        factory = _PrefaceTLSFactory(creator, True, wrapped, clock)
        factory.preface = preface
    else:
        factory = TLSMemoryBIOFactory(creator, True, wrapped, clock)
    factory.noisy = False
    return factory


def connect_tls(endpoint, creator, conn, clock, preface=b""):
    """Connect ``conn`` (a ``TLSUpstreamConnection``) through ``endpoint`` wrapped in TLS
    made by ``creator``; fires with ``conn`` after the handshake (see the module doc).
    ``preface``: bytes sent in clear before the handshake (``tls_client_factory``)."""
    factory = tls_client_factory(creator, QuietFactory(conn), clock, preface)
    handshake = conn.handshake
    d = endpoint.connect(factory)
    d.addCallback(lambda _: handshake)
    return d

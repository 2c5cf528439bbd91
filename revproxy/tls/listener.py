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
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer


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


class TLSListenerFactory(TLSMemoryBIOFactory):
    """TLS around ``wrapped`` (the listener's ``ProxyFactory``)."""

    noisy = False

    def __init__(self, holder, description, wrapped):
        TLSMemoryBIOFactory.__init__(self, CurrentContexts(holder, description), False, wrapped)

    def logPrefix(self):
        return "TLS"

"""Protocol choice per client connection: HTTP/2 or HTTP/1.1.

On a TLS listener the choice is ALPN's: once the handshake completes (Twisted calls
``handshakeCompleted`` on an ``IHandshakeListener``), ``transport.negotiatedProtocol`` says
``h2`` or not. On a cleartext listener with ``[http2] prior_knowledge = true``, a client
whose first bytes are the HTTP/2 connection preface speaks HTTP/2 (RFC 9113 §3.3); the
``Upgrade: h2c`` dance stays refused (it is ignored by the HTTP/1.1 side).

``ProtocolChoice`` hands the connection over to the chosen protocol and gets out of the
way: the chosen protocol's ``dataReceived`` / ``connectionLost`` are bound onto it, so the
transport calls them directly. Until the choice, the connection is watched by the coarse
deadlines: a client that neither completes the handshake nor sends a byte within
``limits.header_timeout`` is aborted.
"""

from __future__ import annotations

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from revproxy.http2.connection import H2ServerConnection
from revproxy.http2.guard import PREFACE
from revproxy.server.protocol import ClientConnection, _Refused

H2_ALPN = b"h2"


def choose(negotiated, data, prior_knowledge: bool):
    """Which protocol speaks: ``"h2"``, ``"http/1.1"``, or None to wait for more bytes.

    ``negotiated``: ALPN's result (bytes or None); ``data``: the bytes received so far."""
    if negotiated is not None:
        return "h2" if negotiated == H2_ALPN else "http/1.1"
    if not prior_knowledge:
        return "http/1.1"
    if data[: len(PREFACE)] != PREFACE[: len(data)]:
        return "http/1.1"
    return "h2" if len(data) >= len(PREFACE) else None


@implementer(IHandshakeListener)
class ProtocolChoice(Protocol):
    """Waits for the TLS handshake (or, in cleartext with prior knowledge, the first
    bytes), then builds the HTTP/2 or HTTP/1.1 connection on the same transport."""

    deadline = None

    def __init__(self, holder, scheme="https", listener="", tls=True, address=None):
        self._holder = holder
        self._address = address  # the peer the factory was asked for (a PROXY header's)
        self._scheme = scheme
        self._listener = listener
        self._tls = tls
        self._buffer = b""
        self._deadlines = None  # revproxy.timers.Deadlines while watched
        self.chosen = None  # the connection protocol, once chosen
        self._handshake_done = False

    def connectionMade(self):
        runtime = self._holder.current
        self._prior_knowledge = runtime.config.http2.prior_knowledge
        if not self._tls and not self._prior_knowledge:
            self._hand_over("http/1.1")
            return
        self._deadlines = runtime.deadlines
        self.deadline = runtime.clock.seconds() + runtime.config.limits.header_timeout
        self._deadlines.watch(self)

    def handshakeCompleted(self):
        self._handshake_done = True
        if self.chosen is None:
            negotiated = getattr(self.transport, "negotiatedProtocol", None)
            self._hand_over(choose(negotiated, b"", False))

    def dataReceived(self, data):
        if self.chosen is not None:  # not reached once handed over (see _hand_over)
            self.chosen.dataReceived(data)
            return
        self._buffer += data
        negotiated = getattr(self.transport, "negotiatedProtocol", None) if self._tls else None
        kind = choose(negotiated, self._buffer, self._prior_knowledge and not self._tls)
        if kind is not None:
            buffered, self._buffer = self._buffer, b""
            self._hand_over(kind)
            self.chosen.dataReceived(buffered)

    def connectionLost(self, reason=None):
        self._unwatch()
        if self.chosen is not None:
            self.chosen.connectionLost(reason)

    def expired(self, now):
        if self.chosen is None:
            self.transport.abortConnection()

    def _hand_over(self, kind):
        self._unwatch()
        runtime = self._holder.current
        if kind == "h2":
            chosen = H2ServerConnection(runtime, self._scheme, self._listener)
        else:
            chosen = ClientConnection(runtime, self._scheme, self._listener)
        chosen.address = self._address
        self.chosen = chosen
        # The transport keeps calling us: bind the chosen protocol's methods here so its
        # calls go straight through (no extra frame per read).
        self.dataReceived = chosen.dataReceived
        self.connectionLost = chosen.connectionLost
        chosen.makeConnection(self.transport)
        tls = getattr(getattr(chosen, "peer", None), "tls", None)
        handle = getattr(self.transport, "getHandle", None)
        if tls is not None and self._handshake_done and handle is not None:
            # the handshake was reported to us before the choice: the facts are the chosen
            # protocol's (mTLS headers, hooks)
            tls.fill(handle())

    def _unwatch(self):
        deadlines, self._deadlines = self._deadlines, None
        self.deadline = None
        if deadlines is not None:
            deadlines.unwatch(self)


class NegotiatingFactory(Factory):
    """A proxy listener's factory: each connection speaks HTTP/2 or HTTP/1.1
    (``ProtocolChoice``). ``tls``: the listener is TLS (ALPN decides, once the handshake is
    done); otherwise only ``[http2] prior_knowledge`` can choose HTTP/2. With
    ``[http2] enabled = false``, or in cleartext without prior knowledge, connections are
    HTTP/1.1 ``ClientConnection``s from the start. The settings are read per connection,
    so a reload applies to the next one."""

    noisy = False

    def __init__(self, runtime_holder, scheme="https", listener="", tls=True):
        self._holder = runtime_holder
        self._scheme = scheme
        self._listener = listener
        self._tls = tls

    def buildProtocol(self, addr):
        runtime = self._holder.current
        access = runtime.ip_access
        # IP lists at accept (the TCP peer decides): see ProxyFactory.buildProtocol
        if access is not None and access.refuses(self._listener, getattr(addr, "host", "")):
            return _Refused() if self._tls else None
        settings = runtime.config.http2
        if not settings.enabled or not (self._tls or settings.prior_knowledge):
            # Nothing to choose: HTTP/1.1 at once, at no cost to the plain path.
            conn = ClientConnection(runtime, self._scheme, self._listener)
            conn.address = addr
            return conn
        return ProtocolChoice(self._holder, self._scheme, self._listener, self._tls, addr)

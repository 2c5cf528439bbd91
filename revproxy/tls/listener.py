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
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from revproxy.netio import send_direct
from revproxy import gcpressure

CHUNK = 2 ** 15  # what Twisted reads at a time, both ways
RECORD = 2 ** 14  # the most plaintext one TLS record holds: what one SSL_write is given
_WANT_READ = _lib.SSL_ERROR_WANT_READ
# One buffer each way for the whole process: the reactor thread alone uses them, and every
# read is copied out before anything else can run.
_RECEIVED = _ffi.new("char[]", CHUNK)
_TO_SEND = _ffi.new("char[]", CHUNK)


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
        gcpressure.tls_connection_created()
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

    Both BIO loops call OpenSSL directly (see ``_flushReceiveBIO``): each read event used to
    end with two exceptions raised and caught (no more plaintext, no ciphertext to send).
    """

    def dataReceived(self, data):
        """Twisted's, with the ciphertext handed to the memory BIO directly once the
        handshake is done (pyOpenSSL's ``bio_write`` costs five Python-level calls more)."""
        if not self._handshakeDone or self._appSendBuffer or type(data) is not bytes:
            TLSMemoryBIOProtocol.dataReceived(self, data)
            return
        bio = self._tlsConnection._into_ssl
        count = _lib.BIO_write(bio, data, len(data))
        if count <= 0:
            self._tlsConnection._handle_bio_errors(bio, count)  # raises as pyOpenSSL does
        self._flushReceiveBIO()

    def _write(self, data):
        """Twisted's, with ``SSL_write`` called directly once the handshake is done: a
        successful write is a return code, not pyOpenSSL's conversions and error check;
        anything else goes through pyOpenSSL's exception and Twisted's handling of it."""
        if not self._handshakeDone or type(data) is not bytes:
            TLSMemoryBIOProtocol._write(self, data)
            return
        if self._lostTLSConnection:
            return
        connection = self._tlsConnection
        ssl = connection._ssl
        total = len(data)
        sent = 0
        while sent < total:
            piece = data if total <= RECORD else data[sent:sent + RECORD]
            count = _lib.SSL_write(ssl, piece, len(piece))
            if count <= 0:
                try:
                    connection._raise_ssl_error(ssl, count)
                except SSL.WantReadError:
                    self._bufferedWrite(data[sent:])
                except SSL.Error:
                    self._tlsShutdownFinished(Failure())
                return
            sent += count
            self._flushSendBIO()

    def _flushSendBIO(self):
        bio = self._tlsConnection._from_ssl
        count = _lib.BIO_read(bio, _TO_SEND, CHUNK)
        if count <= 0:
            if _lib.BIO_should_retry(bio):
                return  # nothing in the send BIO now (pyOpenSSL: WantReadError)
            self._tlsConnection._handle_bio_errors(bio, count)  # raises as pyOpenSSL does
            return
        send_direct(self.transport, _ffi.buffer(_TO_SEND, count)[:])

    def _flushReceiveBIO(self):
        """Twisted's loop, with OpenSSL called directly: "no more plaintext for now" (every
        read event ends with it) is a return code checked here, not a ``WantReadError``
        raised and caught, and the read buffer is allocated once. Anything else goes
        through pyOpenSSL's exception and Twisted's handling of it."""
        connection = self._tlsConnection
        ssl = connection._ssl
        while not self._lostTLSConnection:
            count = _lib.SSL_read(ssl, _RECEIVED, CHUNK)
            if count > 0:
                if not self._aborted:
                    self.wrappedProtocol.dataReceived(_ffi.buffer(_RECEIVED, count)[:])
                continue
            if _lib.SSL_get_error(ssl, count) == _WANT_READ:
                break
            try:
                connection._raise_ssl_error(ssl, count)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # close_notify: as Twisted
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except SSL.Error:
                self._tlsShutdownFinished(Failure())
        self._flushSendBIO()


class TLSListenerFactory(TLSMemoryBIOFactory):
    """TLS around ``wrapped`` (the listener's ``ProxyFactory``)."""

    noisy = False
    protocol = DirectSendTLSProtocol

    def __init__(self, holder, description, wrapped):
        TLSMemoryBIOFactory.__init__(self, CurrentContexts(holder, description), False, wrapped)

    def logPrefix(self):
        return "TLS"


"""What every stage and hook reads about one connection and one request."""

from __future__ import annotations


class PeerFacts:
    """One client connection as hooks see it; built once per connection, never changed.

    ``client_ip`` (str) and ``client_port`` (int) are the TCP peer; ``scheme`` is ``"http"``
    or ``"https"`` (from the listener); ``listener`` the listener's endpoint description;
    ``tls`` None on plain listeners, else a ``revproxy.tls.facts.TLSFacts``: SNI, ALPN,
    protocol version, cipher, the verified client certificate's subject and SHA-256
    fingerprint. It is filled in place when the handshake completes (``tls.complete``):
    request hooks see it complete, ``connection_made`` hooks see it still empty.
    ``local_address()`` is the address the client connected to (see there).
    """

    __slots__ = ("client_ip", "client_port", "scheme", "listener", "tls", "_local")

    def __init__(self, client_ip="", client_port=0, scheme="http", listener="", tls=None,
                 local=None):
        self.client_ip = client_ip
        self.client_port = client_port
        self.scheme = scheme
        self.listener = listener
        self.tls = tls
        # (ip, port), None, or a callable giving a Twisted address (the transport's getHost,
        # asked on first use only: a getsockname per connection nobody needs is not paid)
        self._local = local

    def local_address(self):
        """``(ip, port)`` the client connected to: the listener's address, or the
        destination a trusted PROXY header named; None when there is no IP address (a
        Unix-socket listener) or it cannot be known any more (the connection closed)."""
        local = self._local
        if local is None or local.__class__ is tuple:
            return local
        try:
            address = local()
            local = (address.host, address.port)
        except Exception:  # a closed socket, a Unix address (no host / port)
            local = None
        if local is not None and not (isinstance(local[0], str) and local[0]
                                      and isinstance(local[1], int)):
            local = None
        self._local = local
        return local

    def __repr__(self):
        return "<PeerFacts %s:%d %s>" % (self.client_ip, self.client_port, self.scheme)


class RequestContext:
    """One request as every stage reads it.

    ``head`` is the parsed ``RequestHead`` (shared and immutable: never change it);
    ``peer`` the connection's ``PeerFacts``; ``request_id`` bytes; ``route`` the matched
    ``Route`` (None until routing, and for requests refused before it); ``path`` the
    normalised path (str) and ``query`` the raw query (str or None); ``started_at`` the clock
    time the head was parsed; ``member`` the name of the member that answered (None until one
    did); ``notes`` a dict hooks may use to pass facts to later phases and to each other
    (created on first use of ``note``); ``bytes_sent`` the response body bytes sent to the
    client, set just before the ``request_end`` phase (0 until then).
    """

    __slots__ = ("head", "peer", "request_id", "route", "path", "query", "started_at",
                 "member", "notes", "body", "bytes_sent")

    def __init__(self, head, peer, started_at):
        self.head = head
        self.peer = peer
        self.started_at = started_at
        self.request_id = b"-"
        self.route = None
        self.path = "/"
        self.query = None
        self.member = None
        self.notes = None
        self.body = None  # BodyView once the body is complete (request_body phase on)
        self.bytes_sent = 0

    # -- conveniences for hooks -------------------------------------------------------------
    @property
    def method(self) -> bytes:
        return self.head.method

    @property
    def target(self) -> bytes:
        return self.head.target

    @property
    def host(self) -> bytes:
        return self.head.host

    @property
    def headers(self):
        """The request's header fields as received: a sequence of (lower-case name, value)
        bytes pairs, repeated names kept in order. Read-only."""
        return self.head.headers

    @property
    def client_ip(self) -> str:
        return self.peer.client_ip

    @property
    def scheme(self) -> str:
        return self.peer.scheme

    def header(self, name: bytes):
        """The first value of header ``name`` (lower-case bytes), or None."""
        for key, value in self.head.headers:
            if key == name:
                return value
        return None

    def note(self, key, value) -> None:
        """Remember ``value`` under ``key`` for later phases (``notes[key]``)."""
        if self.notes is None:
            self.notes = {}
        self.notes[key] = value


class BodyView:
    """The buffered request body as the ``request_body`` phase sees it.

    ``size`` is its length in bytes; ``read(limit)`` returns at most ``limit`` bytes from the
    start (the body may be on disk: hooks should bound what they read)."""

    __slots__ = ("size", "_spool")

    def __init__(self, spool, size):
        self._spool = spool
        self.size = size

    def read(self, limit: int) -> bytes:
        if self._spool is None or limit <= 0:
            return b""
        return self._spool.peek(limit)

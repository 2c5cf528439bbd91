"""Admitting a new client connection, HTTP/1.1 or HTTP/2: its peer facts and the ceilings.

``admit`` runs once per accepted connection, from ``ClientConnection.connectionMade``
(``revproxy.server.protocol``) and ``H2ServerConnection.connectionMade``
(``revproxy.http2.connection``); it decides nothing else about the connection.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy import gcpressure
from revproxy.pipeline.context import PeerFacts
from revproxy.tls.facts import TLSFacts

log = Logger(namespace="revproxy.server")


def admit(conn) -> bool:
    """A new client connection (HTTP/1.1 or HTTP/2): set its ``client_ip``, ``client_port``
    and ``peer`` (``PeerFacts``, with an empty ``TLSFacts`` on TLS listeners, filled at the
    handshake) and count it in ``runtime.stats``; False (logged) when the total or per-IP
    limit refuses it (``trusted_proxies`` are exempt from the per-IP one). The peer is
    ``conn.address`` when its factory set one (the client a PROXY header named:
    ``revproxy.server.proxylisten``), else the transport's; the address it connected to
    (``peer.local_address()``) is that header's destination, else the transport's host,
    asked for only when needed."""
    peer = conn.address if conn.address is not None else conn.transport.getPeer()
    conn.client_ip = getattr(peer, "host", "") or ""
    conn.client_port = getattr(peer, "port", 0) or 0
    conn.peer = PeerFacts(conn.client_ip, conn.client_port, conn.scheme, conn.listener,
                          TLSFacts() if conn.scheme == "https" else None,
                          getattr(peer, "destination", None) or conn.transport.getHost)
    gcpressure.connection_accepted()
    runtime = conn.runtime
    stats = runtime.stats
    exempt = bool(stats.max_per_ip) and runtime.forwarding.is_trusted(conn.client_ip)
    refusal = stats.connection_opened(conn, exempt)
    if refusal is not None:
        log.warn("{ip} refused: {reason}", ip=conn.client_ip, reason=refusal)
        return False
    return True

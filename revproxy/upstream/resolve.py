"""Member addresses: IP literals as they are; host names resolved at start and periodically.

Every address a name resolves to becomes a member. A failed re-resolution keeps the last
known addresses (and says so in the log), so a DNS hiccup never empties a pool.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.interfaces import IResolutionReceiver
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

log = Logger(namespace="revproxy.resolve")


def split_member(url: str):
    """``http://host:port`` -> ``(host, port)``; IPv6 brackets removed; port 80 by default
    (443 for https). ``unix:/path`` -> ``("/path", 0)``: a member whose host starts with
    ``/`` is a Unix-domain socket (``is_socket_path``)."""
    if url.startswith("unix:"):
        return url[5:], 0
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def member_address(url: str, weight: int):
    """``(host, port, weight, tls_host)`` of a member URL: ``tls_host`` is the host for an
    https:// member (its TLS server name unless the pool overrides it), None for http://."""
    host, port = split_member(url)
    return host, port, weight, (host if url.startswith("https://") else None)


def is_socket_path(host: str) -> bool:
    """The member ``host`` is the path of a Unix-domain socket (no resolution, no port)."""
    return host.startswith("/")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@implementer(IResolutionReceiver)
class _Collector:
    def __init__(self):
        self.addresses = []
        self.done = defer.Deferred()

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        self.done.callback(self.addresses)


def resolve_all(name_resolver, host: str):
    """A Deferred of every address ``host`` resolves to (possibly empty)."""
    collector = _Collector()
    name_resolver.resolveHostName(collector, host)
    return collector.done


class MemberResolver:
    """Keeps one ``Backend``'s addresses current."""

    def __init__(self, clock, name_resolver, backend):
        self._clock = clock
        self._resolver = name_resolver
        self._backend = backend
        config = backend.config
        self._members = [member_address(url, config.weight_of(url)) for url in config.members]
        self._loop = None
        self._last = {}  # (host, port, tls_host) -> the addresses it last resolved to

    @property
    def needs_dns(self) -> bool:
        return any(not (is_ip(member[0]) or is_socket_path(member[0]))
                   for member in self._members)

    def start(self):
        """Resolve now; when a name is involved, again every ``resolve_interval``."""
        if not self.needs_dns:
            self._backend.set_addresses(self._members)
            return defer.succeed(None)
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self._clock
        return self._loop.start(self._backend.config.resolve_interval, now=True)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def inherit(self, previous):
        """Start from what ``previous`` (the resolver this one replaces on reload) last
        found, so a name that fails to resolve just after the reload keeps its members."""
        self._last.update(previous._last)

    @defer.inlineCallbacks
    def refresh(self):
        addresses = []
        for host, port, weight, tls_host in self._members:
            if is_ip(host) or is_socket_path(host):
                addresses.append((host, port, weight, tls_host))
                continue
            try:
                found = yield resolve_all(self._resolver, host)
            except Exception as e:  # a resolver failure must not stop the loop
                found = []
                log.warn("resolving {host}: {e}", host=host, e=e)
            if found:
                self._last[(host, port, tls_host)] = [(ip, port, weight, tls_host)
                                                      for ip in sorted(set(found))]
            else:
                log.warn("pool {pool}: {host} resolved to nothing; keeping the last addresses",
                         pool=self._backend.name, host=host)
            addresses.extend(self._last.get((host, port, tls_host), []))
        self._backend.set_addresses(addresses)

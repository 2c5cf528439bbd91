"""IP allow and deny lists: which lists apply where, and the decision for one address.

Scope of a ``[[ip_lists]]`` entry:

* neither ``listeners`` nor ``routes``: every connection, on every listener, at accept;
* ``listeners`` only: the connections accepted on those listeners, at accept;
* ``routes`` only: the requests matched to those routes, whichever listener (403);
* both: the requests matched to those routes that arrived through those listeners (403).

Decision among the lists of one scope: an address in any deny list is refused; otherwise,
when at least one allow list applies, only an address in one of them passes; with no allow
list, it passes. Deny wins over allow. The accept scope and the route scope are decided
independently: a request passes its listener's lists (at accept) and then its route's. A
peer without an IP address (a ``unix:`` listener) is in no list: deny lists let it pass, an
allow list refuses it.

The client address is the TCP peer. When the PROXY protocol arrives (its own issue), the
accept decision must move to the point where the PROXY header has given the real client
address (a ``connection_made`` hook), and ``PeerFacts.client_ip`` will carry it for routes.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from twisted.logger import Logger

from revproxy.config.errors import ConfigError
from revproxy.protection.cidr import AddressMatcher, parse_entry, peer_key
from revproxy.protection.listfiles import ListFileCache
from revproxy.protection.logthrottle import LogThrottle

log = Logger(namespace="revproxy.protection")


def _union(matchers):
    if len(matchers) == 1:
        return matchers[0]
    return AddressMatcher.union(matchers)


class Gate:
    """The lists that apply to one scope, decided as one: ``admits(key)`` for a
    ``peer_key`` (None: no IP address), O(log n) for each of deny and allow."""

    __slots__ = ("deny", "allow", "_lists")

    def __init__(self, lists):
        """``lists``: (name, action, AddressMatcher) in config order."""
        denies = [matcher for _, action, matcher in lists if action == "deny"]
        allows = [matcher for _, action, matcher in lists if action == "allow"]
        self.deny = _union(denies) if denies else None
        self.allow = _union(allows) if allows else None
        self._lists = tuple(lists)

    def admits(self, key) -> bool:
        if self.deny is not None and key in self.deny:
            return False
        return self.allow is None or key in self.allow

    def admits_host(self, host: str) -> bool:
        return self.admits(peer_key(host))

    def reason_host(self, host: str) -> str:
        return self.reason(peer_key(host))

    def reason(self, key) -> str:
        """Why ``key`` is refused (only asked after ``admits`` said no)."""
        for name, action, matcher in self._lists:
            if action == "deny" and key in matcher:
                return 'in deny list "%s"' % name
        names = ", ".join('"%s"' % name for name, action, _ in self._lists if action == "allow")
        return "in no allow list (%s)" % names


class IPAccess:
    """The IP lists of one runtime: the accept gate of each listener and the gate of each
    (listener, route) pair that has lists; ``files`` and ``throttle`` are handed on to the
    next runtime so that unchanged files are not parsed again and the log bound holds."""

    def __init__(self, accept: Dict[str, Gate], routes: Dict[Tuple[str, str], Gate],
                 files: ListFileCache, throttle: LogThrottle):
        self.accept = accept
        self.routes = routes
        self.files = files
        self.throttle = throttle

    def refuses(self, listener: str, host: str) -> bool:
        """True when a connection from ``host`` on ``listener`` must be closed at accept;
        logs it, at most ``throttle`` lines at a time."""
        gate = self.accept.get(listener)
        if gate is None:
            return False
        key = peer_key(host)
        if gate.admits(key):
            return False
        throttle = self.throttle
        if throttle.allow():
            held = throttle.take_suppressed()
            log.warn("{ip} refused at accept on {listener}: {reason}{more}", ip=host or "-",
                     listener=listener, reason=gate.reason(key),
                     more=" (and %d more refusals not logged)" % held if held else "")
        return True

    def route_refusal(self, listener: str, route: str, host: str) -> Optional[str]:
        """None when a request on ``route`` from ``host`` through ``listener`` may go on,
        else the reason it is refused."""
        gate = self.routes.get((listener, route))
        if gate is None:
            return None
        key = peer_key(host)
        if gate.admits(key):
            return None
        return "%s refused on route %s: %s" % (host or "-", route, gate.reason(key))


def build_ip_access(config, clock, previous: Optional[IPAccess] = None) -> Optional[IPAccess]:
    """The ``IPAccess`` of ``config.ip_lists`` (None when there is none), every file read
    now. Raises ``ConfigError`` for a scope naming an unknown listener or route, a file that
    cannot be read, or a line that does not parse (naming file, line and value)."""
    if not config.ip_lists:
        return None
    _check_scopes(config)
    files = previous.files if previous is not None else ListFileCache()
    throttle = previous.throttle if previous is not None else LogThrottle(clock)
    built = []
    for index, spec in enumerate(config.ip_lists):
        matchers = [AddressMatcher(_inline(spec))]
        for number, path in enumerate(spec.files, 1):
            where = "[[ip_lists]] #%d (%s) files #%d" % (index + 1, spec.name, number)
            matchers.append(files.load(path, where, config.source))
        matcher = _union(matchers) if len(matchers) > 1 else matchers[0]
        log.info("ip list {name} ({action}): {entries} entries, {ranges} ranges", name=spec.name,
                 action=spec.action, entries=matcher.entries, ranges=len(matcher))
        built.append((spec, matcher))
    files.keep_only({path for spec in config.ip_lists for path in spec.files})
    accept, routes = {}, {}
    for listener in config.server.listen:
        lists = [(s.name, s.action, m) for s, m in built
                 if not s.routes and (not s.listeners or listener in s.listeners)]
        if lists:
            accept[listener] = Gate(lists)
        for route in config.routes:
            lists = [(s.name, s.action, m) for s, m in built
                     if route.name in s.routes and (not s.listeners or listener in s.listeners)]
            if lists:
                routes[(listener, route.name)] = Gate(lists)
    return IPAccess(accept, routes, files, throttle)


def _inline(spec):
    return [parse_entry(entry) for entry in spec.addresses]  # checked when the config was read


def _check_scopes(config) -> None:
    listeners = config.server.listen
    routes = [route.name for route in config.routes]
    for index, spec in enumerate(config.ip_lists):
        label = "[[ip_lists]] #%d (%s)" % (index + 1, spec.name)
        for number, name in enumerate(spec.listeners, 1):
            if name not in listeners:
                raise ConfigError(config.source, "%s listeners #%d" % (label, number), name,
                                  "expected one of the [server] listen endpoints, as written: "
                                  + ", ".join(listeners))
        for number, name in enumerate(spec.routes, 1):
            if name not in routes:
                raise ConfigError(config.source, "%s routes #%d" % (label, number), name,
                                  "expected the name of a [[routes]] entry: "
                                  + (", ".join(routes) or "(none)"))

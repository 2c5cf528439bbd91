"""Everything a request needs, built from one immutable ``Config`` snapshot.

A request runs on the runtime current when its head arrived; a reload (SIGHUP) builds a new
one (``revproxy.tap.build_runtime``) and swaps ``RuntimeHolder.current``, so requests in flight
finish on the snapshot they began with and a keep-alive connection's next request takes the
new one. ``Shared`` holds what outlives reloads.
"""

from __future__ import annotations

import random

from twisted.internet import defer

from revproxy.http1.parser import Limits as ParserLimits
from revproxy.pipeline.hooks import NO_HOOKS
from revproxy.protection.connections import IdleConnections, PerAddress, admission
from revproxy.routing.errorpages import build_error_pages
from revproxy.routing.plan import RoutePlan, needs_plan
from revproxy.routing.router import Router
from revproxy.server.proxy import ProxyRequest
from revproxy.upstream.headers import (
    ForwardingPolicy,
    client_response_headers,
    new_request_id_factory,
    strip_hop_by_hop,
)
from revproxy.upstream.spool import Spool


def parser_limits_for(limits):
    """The HTTP/1.1 parser's limits (both sides) from the ``[limits]`` section."""
    return ParserLimits(
        max_request_line=limits.max_request_line,
        max_header_bytes=limits.max_header_bytes,
        max_header_count=limits.max_header_count,
    )


class Stats:
    """Process-wide connection accounting; outlives reloads.

    Admission (``revproxy.protection.connections``): at most ``max_connections`` in total and
    ``max_per_ip`` from one address (0 = no limit); when the total is reached, the connection
    idle the longest on keep-alive is closed to admit the new one."""

    def __init__(self, max_connections: int, max_per_ip: int = 0):
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.connections = set()
        self.per_ip = PerAddress()
        self.idle = IdleConnections()
        self.shed = 0  # idle connections closed to admit new ones, since start
        self.slow_request_cuts = 0  # request bodies refused as too slow (408), since start
        self.slow_response_cuts = 0  # clients cut off for reading too slowly, since start
        self.shutting_down = False
        self._empty_waiters = []

    def connection_opened(self, conn, exempt: bool = False):
        """Admit ``conn`` (None) or say why not (a reason string). ``exempt``: no per-address
        limit (a trusted proxy). May close the oldest idle connection to make room."""
        if self.shutting_down:
            return "shutting down"
        ip = conn.client_ip
        verdict = admission(len(self.connections), self.max_connections, self.per_ip.count(ip),
                            0 if exempt else self.max_per_ip, len(self.idle) > 0)
        if verdict == "shed":
            oldest = self.idle.pop_oldest()
            self._forget(oldest)
            self.shed += 1
            oldest.shed()
        elif verdict != "admit":
            return verdict
        self.connections.add(conn)
        self.per_ip.add(ip)
        return None

    def connection_closed(self, conn) -> None:
        if conn in self.connections:
            self._forget(conn)
        if not self.connections:
            waiters, self._empty_waiters = self._empty_waiters, []
            for d in waiters:
                d.callback(None)

    def _forget(self, conn) -> None:
        """``conn`` no longer counts (closed, or closing to make room)."""
        self.connections.discard(conn)
        self.idle.discard(conn)
        self.per_ip.remove(conn.client_ip)

    def wait_empty(self):
        """A Deferred that fires once no client connection is open."""
        d = defer.Deferred()
        if self.connections:
            self._empty_waiters.append(d)
        else:
            d.callback(None)
        return d


class Shared:
    """The process-wide parts every runtime uses and a reload keeps: the reactor, randomness,
    connection accounting, the spool budget, deadlines, the output batcher, the log files."""

    recorder = None  # revproxy.admin.recorder.RequestRecorder, set by tap.build
    ticket_secret = None  # bytes: what TLS session ticket keys derive from (tap.build)
    ticket_from_supervisor = False  # the secret is shared with the other workers
    ticket_keys = False  # revproxy.tls.ticketkeys.TicketKeys or None once resolved (tls.compose)

    def __init__(self, reactor, rng, randbytes, stats, budget, deadlines, outbox, logs):
        self.reactor = reactor
        self.rng = rng  # random.Random for balancers
        self.randbytes = randbytes
        self.stats = stats
        self.budget = budget
        self.deadlines = deadlines
        self.outbox = outbox
        self.logs = logs  # revproxy.server.logfiles.LogFiles

    def apply(self, config):
        """Take the process-wide settings of ``config`` (start-up, and a reload once
        committed): connection ceiling, spool totals, error log."""
        self.stats.max_connections = config.limits.max_connections
        self.stats.max_per_ip = config.limits.max_connections_per_ip
        self.budget.total_memory = config.buffering.total_memory
        self.budget.total_disk = config.buffering.total_disk
        self.logs.set_error_log(config.logging.error_log)


class Runtime:
    holder = None  # the RuntimeHolder that made it current: connections find the newest there
    recorder = None  # revproxy.admin.recorder.RequestRecorder (process-wide), or None
    admin_token = None  # the admin API's bearer token (bytes), or None (revproxy.admin.auth)
    ip_access = None  # revproxy.protection.iplists.IPAccess, or None without [[ip_lists]]
    user_hooks = None  # the [[hooks]] plugins alone (``hooks`` adds the built-in ones)
    firewall = None  # revproxy.firewall.build.Firewall, or None when [firewall] is off

    def __init__(self, config, clock, stats, budget, temp_dir, access_log, backends, randbytes,
                 deadlines, outbox, cache=None, hooks=NO_HOOKS, tls=None, rng=None):
        self.config = config
        self.clock = clock
        self.stats = stats
        self.budget = budget
        self.temp_dir = temp_dir
        self.access_log = access_log
        self.backends = backends  # pool name -> Backend
        self.deadlines = deadlines  # coarse per-connection timers (revproxy.timers)
        self.outbox = outbox  # batched output (revproxy.netio)
        self.cache = cache  # revproxy.cache.engine.HttpCache, or None when [cache] is off
        self.hooks = hooks  # revproxy.pipeline.hooks.HookSet: the configured hooks by phase
        self.user_hooks = hooks  # the [[hooks]] part of it (tap.build_runtime)
        self.rate_limits = None  # revproxy.protection.ratelimit.RateLimitHook, or None
        self._key_settings = {}  # route name -> KeySettings
        self._compression = {}  # route name -> revproxy.compression.policy.RoutePolicy
        self.via_field = (b"via", b"1.1 " + config.server.proxy_name.encode("ascii"))
        self.parser_limits = parser_limits_for(config.limits)
        server = config.server
        self.router = Router(config.routes)
        self.forwarding = ForwardingPolicy(
            server.proxy_name, server.trusted_proxies, server.request_id_header.encode("ascii")
        )
        self.allowed_upgrades = frozenset(p.lower().encode("ascii") for p in server.allow_upgrade)
        self.new_request_id = new_request_id_factory(randbytes)
        admin = config.admin
        self.debug_clients = None  # a ForwardingPolicy-style trust check, or None when off
        self.request_headers_dropped = frozenset([b"expect"])  # never sent to a backend
        if admin.debug_clients:
            self.debug_clients = ForwardingPolicy(server.proxy_name, admin.debug_clients, b"-")
            self._debug_header = admin.debug_header.encode("ascii")
            self.request_headers_dropped = frozenset([b"expect", self._debug_header])
        self._proxy_name = server.proxy_name
        # [tls]: contexts of the TLS listeners, and the client-certificate headers: never
        # taken from a client, sent only for a verified certificate (revproxy.tls.facts)
        self.tls = tls  # revproxy.tls.runtime.TLSRuntime, or None (no TLS listener)
        tls_config = config.tls
        self.client_cert_header_names = tuple(
            name.encode("ascii") for name in (tls_config.client_subject_header,
                                              tls_config.client_fingerprint_header))
        self.request_headers_dropped = self.request_headers_dropped | frozenset(
            name for name in self.client_cert_header_names if name)
        # Per-route stages (rewriting, answers, headers, split: revproxy.routing.plan), only for
        # the routes that use them; error pages read from their files (None: none configured).
        self.random = (rng or random.Random()).random
        self.route_plans = {route.name: RoutePlan(route, self.clock) for route in config.routes
                            if needs_plan(route)}
        self.error_pages = build_error_pages(config)

    def wants_decision(self, client_ip, headers) -> bool:
        """A debug client asked for the x-revproxy-decision header."""
        if not self.debug_clients.is_trusted(client_ip):
            return False
        name = self._debug_header
        return any(key == name and value == b"1" for key, value in headers)

    def new_request(self, peer, head, sink):
        """The ``ProxyRequest`` for ``head`` from ``peer`` (``PeerFacts``), answering
        through ``sink`` (an ``IResponseSink``)."""
        return ProxyRequest(self, peer, head, sink)

    def new_request_spool(self):
        return Spool(self.budget, self.config.buffering.request_memory,
                     self.config.limits.max_body_size, self.temp_dir)

    def new_response_spool(self):
        buffering = self.config.buffering
        return Spool(self.budget, buffering.response_memory, buffering.response_file_max, self.temp_dir)

    def cache_key_settings(self, route):
        """The key settings of ``route`` (``[cache]`` with the route's overrides), memoised."""
        settings = self._key_settings.get(route.name)
        if settings is None:
            from revproxy.cache.keys import KeySettings

            settings = self._key_settings[route.name] = KeySettings(self.config.cache, route)
        return settings

    def cache_headers(self, headers):
        """A backend response's headers as stored: hop-by-hop and framing removed."""
        return strip_hop_by_hop(headers)

    def served_headers(self, headers):
        """Stored headers as sent to a client: our Via appended."""
        return client_response_headers(headers, proxy_name=self._proxy_name, version=b"1.1")

    def client_headers(self, headers):
        return client_response_headers(headers, proxy_name=self._proxy_name, version=b"1.1")

    def compression_for(self, route):
        """The compression policy of a ``compress = true`` route (``[compression]`` with the
        route's overrides, only the codings installed here), memoised."""
        policy = self._compression.get(route.name)
        if policy is None:
            from revproxy.compression.policy import policy_for

            policy = self._compression[route.name] = policy_for(self.config.compression, route)
        return policy


class RuntimeHolder:
    """The runtime new connections and new requests run under."""

    def __init__(self, runtime):
        self.current = None
        self.swap(runtime)

    def swap(self, runtime):
        """Make ``runtime`` current (atomically: one assignment in the reactor thread)."""
        runtime.holder = self
        self.current = runtime

"""The running proxy as a Twisted service: listeners, background tasks, reload, shutdown."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from revproxy.server.backlog import system_backlog as read_backlog
from revproxy.server.backlog import with_backlog
from revproxy.server.listeners import ListenError, ListenerSet
from revproxy.server.proxylisten import ProxyHeaderFactory, inner_description, is_proxied
from revproxy.http2.dispatch import NegotiatingFactory
from revproxy.server.watchers import cache_watchers, pool_watchers, resolver_task
from revproxy.tls.endpoints import is_tls_description, parse_tls_listener
from revproxy.tls.listener import TLSListenerFactory

log = Logger(namespace="revproxy.service")


class ProxyService(service.Service):
    """Listens on every configured endpoint; follows reloads; on stop, drains in-flight requests.

    Starting: ``privilegedStartService`` (before twistd drops privileges) installs the signal
    handlers, then listens on every endpoint; one that cannot listen ends start-up with
    ``SystemExit(1)`` after a critical log line naming it and why (no listener is left open).
    ``startService`` starts resolvers, health checkers, agent pollers and the cache sweeper.

    Reloading: ``switch(runtime)`` (called by ``revproxy.server.reload.Reloader``).

    Stopping (SIGTERM): stop accepting, close idle keep-alive connections, let requests in
    flight finish (their connections close after the response) for up to
    ``server.shutdown_timeout`` seconds, then abort whatever is left.
    """

    signals = None  # revproxy.server.signals.SignalHandlers, installed before listening
    reloader = None  # revproxy.server.reload.Reloader

    def __init__(self, reactor, holder, extra_sites=lambda holder, config: (), system_backlog=None,
                 inherited=None):
        self._reactor = reactor
        # the backlog a listener gets unless configured (revproxy.server.backlog)
        self._system_backlog = system_backlog if system_backlog is not None else read_backlog()
        self._holder = holder
        self._extra_sites = extra_sites  # (holder, config) -> [(role, description, factory)]
        self._factories = {}  # proxy listener description -> its NegotiatingFactory
        self._tls_factories = {}  # TLS listener description -> its TLSListenerFactory
        self._proxy_header_factories = {}  # haproxy: description -> its ProxyHeaderFactory
        # inherited: a worker's sockets from its supervisor (revproxy.workers.inherit)
        self._listeners = ListenerSet(reactor, inherited)
        self._pool_tasks = {}  # id(BalancedPool) -> (pool, resolver task, [watchers])
        self._cache_tasks = (None, [])  # (store, [sweeper])
        self.listening = None  # Deferred of the ports (admin and demo first, proxy last)

    @property
    def runtime(self):
        return self._holder.current

    @property
    def ports(self):
        """The listening ports, in the order they were opened (admin and demo first)."""
        return list(self._listeners.ports.values())

    # -- starting --------------------------------------------------------------------------------
    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        if self.signals is not None:
            self.signals.install()  # SIGHUP's default action would kill us: before listening
        try:
            self._listen_all()
        except ListenError as e:
            log.critical("{e}", e=str(e))
            raise SystemExit(1)

    def startService(self):
        if not self._listeners.ports:  # started without privilegedStartService (tests)
            self._listen_all()
        service.Service.startService(self)
        runtime = self.runtime
        for backend in runtime.backends.values():
            self._start_pool(backend)
        self._start_cache(runtime.cache)

    def _listen_all(self):
        wanted = self._wanted(self.runtime.config)
        self._listeners.adopt(self._listeners.open(wanted))
        self.listening = defer.succeed([self._listeners.ports[key] for key in wanted])

    def _wanted(self, config):
        """``key -> (description, factory, label)`` for every listener ``config`` names."""
        sites = list(self._extra_sites(self._holder, config))
        sites += [("proxy", description, self._proxy_factory(description))
                  for description in config.server.listen]
        wanted = {}
        for role, description, factory in sites:
            endpoint = description
            if role in ("proxy", "admin") and is_tls_description(description):
                # ours, not Twisted's ssl: endpoint: plain TCP, our TLS around the factory
                # (an admin listener gets our defaults and client certificates too)
                endpoint = parse_tls_listener(description).tcp
                factory = self._tls_factory(description, factory)
            elif role == "proxy" and is_proxied(description):
                endpoint = inner_description(description)
            if role == "proxy" and is_proxied(description):
                # the PROXY header comes first, before any TLS byte
                factory = self._proxy_header_factory(description, factory)
            endpoint, backlog = with_backlog(endpoint, config.server.backlog,
                                             self._system_backlog)
            label = ", backlog %d" % backlog + ("" if role == "proxy" else ", " + role)
            wanted[(role, description)] = (description, endpoint, factory, label)
        return wanted

    def _proxy_factory(self, description):
        """The factory of one proxy listener: its connections carry the listener's
        description and scheme (``https`` for ``ssl:``), end to end."""
        factory = self._factories.get(description)
        if factory is None:
            scheme = listener_scheme(description)
            # HTTP/2 or HTTP/1.1 per connection: ALPN on TLS, the preface with prior knowledge
            factory = self._factories[description] = NegotiatingFactory(
                self._holder, scheme, description, tls=scheme == "https")
        return factory

    def _proxy_header_factory(self, description, factory):
        """The PROXY-header reader in front of a ``haproxy:`` listener's factory."""
        wrapper = self._proxy_header_factories.get(description)
        if wrapper is None:
            wrapper = self._proxy_header_factories[description] = ProxyHeaderFactory(
                self._holder, factory, description)
        return wrapper

    def _tls_factory(self, description, proxy_factory):
        """The TLS wrapper of a TLS listener's factory: at each accept it takes the contexts
        of the runtime current then, so a kept listener serves reloaded certificates."""
        factory = self._tls_factories.get(description)
        if factory is None:
            factory = self._tls_factories[description] = TLSListenerFactory(
                self._holder, description, proxy_factory)
        return factory

    # -- reloading -------------------------------------------------------------------------------
    def switch(self, runtime):
        """Make ``runtime`` current: open its new listeners first (``ListenError``: nothing
        changed), then swap, close the listeners it no longer names, and move the background
        tasks to its pools and store. Connections and requests in flight are not touched."""
        old = self.runtime
        wanted = self._wanted(runtime.config)
        opened = self._listeners.open(wanted)
        self._holder.swap(runtime)
        self._listeners.adopt(opened)
        self._listeners.close_except(wanted)
        if self.running:
            self._follow_pools(old, runtime)
            self._follow_cache(runtime.cache)

    def _follow_pools(self, old, new):
        current = {id(backend) for backend in new.backends.values()}
        for key, (backend, resolver, watchers) in list(self._pool_tasks.items()):
            if key not in current:  # removed or rebuilt: stop watching, let it drain
                del self._pool_tasks[key]
                resolver.stop()
                for watcher in watchers:
                    watcher.stop()
                backend.drain()
        for name, backend in new.backends.items():
            wanted = new.config.pool(name)
            if id(backend) not in self._pool_tasks:
                self._start_pool(backend)
            elif backend.config != wanted:  # same settings, other members or weights
                backend.update_config(wanted)
                _, resolver, watchers = self._pool_tasks[id(backend)]
                resolver.stop()
                fresh = resolver_task(self._reactor, backend)
                fresh.inherit(resolver)
                self._pool_tasks[id(backend)] = (backend, fresh, watchers)
                fresh.start()

    def _start_pool(self, backend):
        resolver = resolver_task(self._reactor, backend)
        watchers = pool_watchers(self._reactor, backend)
        self._pool_tasks[id(backend)] = (backend, resolver, watchers)
        resolver.start()
        for watcher in watchers:
            watcher.start()

    def _start_cache(self, cache):
        store = cache.store if cache is not None else None
        self._cache_tasks = (store, cache_watchers(self._reactor, cache))
        for watcher in self._cache_tasks[1]:
            watcher.start()

    def _follow_cache(self, cache):
        old_store, watchers = self._cache_tasks
        store = cache.store if cache is not None else None
        if store is old_store:
            return
        for watcher in watchers:
            watcher.stop()
        if old_store is not None:
            old_store.close()  # a request still using it sees a closed store: a miss, no error
        self._start_cache(cache)

    # -- stopping --------------------------------------------------------------------------------
    def stopService(self):
        service.Service.stopService(self)
        for backend, resolver, watchers in self._pool_tasks.values():
            resolver.stop()
            for watcher in watchers:
                watcher.stop()
        for watcher in self._cache_tasks[1]:
            watcher.stop()
        stats = self.runtime.stats
        stats.shutting_down = True
        stopping = [defer.maybeDeferred(lambda d=d: d) for d in self._listeners.close_all()]
        for conn in list(stats.connections):
            conn.close_if_idle()
        d = defer.gatherResults(stopping, consumeErrors=True)
        d.addBoth(lambda _: self._drain(stats))
        d.addCallback(lambda _: self._close_store())
        return d

    def _close_store(self):
        """Once the connections are gone: let the cache store finish its writes (the disk
        store's threads) so that a restart finds every entry it stored."""
        store = self._cache_tasks[0]
        if store is None:
            return None
        return defer.maybeDeferred(store.close).addErrback(
            lambda f: log.failure("cache store close failed", f))

    def _drain(self, stats):
        timeout = self.runtime.config.server.shutdown_timeout

        def abort_stragglers():
            log.warn("shutdown: aborting {n} connections still busy after {t}s",
                     n=len(stats.connections), t=timeout)
            for conn in list(stats.connections):
                conn.transport.abortConnection()
                stats.connection_closed(conn)

        deadline = self._reactor.callLater(timeout, abort_stragglers)

        def drained(_):
            if deadline.active():
                deadline.cancel()
            for backend in self.runtime.backends.values():
                backend.close_idle()
            self.runtime.deadlines.stop()

        return stats.wait_empty().addCallback(drained)


def listener_scheme(description: str) -> str:
    """``https`` for a TLS endpoint description (``ssl:``, ``tls:``), else ``http``."""
    return "https" if is_tls_description(description) else "http"

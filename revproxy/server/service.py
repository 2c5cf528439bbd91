"""The running proxy as a Twisted service: listeners, resolvers, graceful shutdown."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from revproxy.server.protocol import ProxyFactory

log = Logger(namespace="revproxy.service")


class ProxyService(service.Service):
    """Listens on every configured endpoint; on stop, drains in-flight requests.

    Stopping (SIGTERM): stop accepting, close idle keep-alive connections, let requests in
    flight finish (their connections close after the response) for up to
    ``server.shutdown_timeout`` seconds, then abort whatever is left.
    """

    def __init__(self, reactor, holder, resolvers, extra_sites=(), watchers=()):
        self._reactor = reactor
        self._holder = holder
        self._resolvers = resolvers
        self._extra_sites = extra_sites  # (endpoint description, factory): admin, demo backends
        self._watchers = watchers  # health checkers, agent pollers: start() / stop()
        self._ports = []
        self.listening = None  # Deferred: fires once every listener is up

    @property
    def runtime(self):
        return self._holder.current

    def startService(self):
        service.Service.startService(self)
        for resolver in self._resolvers:
            resolver.start().addErrback(lambda f: log.failure("resolver", f))
        for watcher in self._watchers:
            watcher.start()
        listens = []
        for description, factory in self._extra_sites:
            listens.append(self._listen(description, factory))
        factory = ProxyFactory(self._holder)
        for description in self.runtime.config.server.listen:
            listens.append(self._listen(description, factory))
        self.listening = defer.gatherResults(listens, consumeErrors=True)
        self.listening.addErrback(self._cannot_listen)

    def _listen(self, description, factory):
        endpoint = serverFromString(self._reactor, description)
        d = endpoint.listen(factory)

        def listening(port):
            self._ports.append(port)
            log.info("listening on {addr} ({desc})", addr=port.getHost(), desc=description)
            return port

        def failed(failure):
            log.critical("cannot listen on {desc}: {e}", desc=description, e=failure.getErrorMessage())
            return failure

        return d.addCallbacks(listening, failed)

    def _cannot_listen(self, failure):
        if self._reactor.running:
            self._reactor.stop()
        return failure

    def stopService(self):
        service.Service.stopService(self)
        for resolver in self._resolvers:
            resolver.stop()
        for watcher in self._watchers:
            watcher.stop()
        stats = self.runtime.stats
        stats.shutting_down = True
        stopping = [defer.maybeDeferred(port.stopListening) for port in self._ports]
        self._ports = []
        for conn in list(stats.connections):
            conn.close_if_idle()
        d = defer.gatherResults(stopping, consumeErrors=True)
        d.addBoth(lambda _: self._drain(stats))
        return d

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

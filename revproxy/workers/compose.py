"""What ``twistd revproxy`` runs when workers are involved (called by ``tap.makeService``).

- ``--worker SPEC``: this process is a worker: the proxy of one process, listening on the
  sockets it inherited and serving its admin API on its private Unix socket; demo backends
  off (the supervisor runs them); it stops when its supervisor goes away.
- ``--workers N`` or ``[server] workers`` above 1: this process is the supervisor.
- otherwise: None, the single-process proxy as before.
"""

from __future__ import annotations

import os
from dataclasses import replace

from twisted.application import service
from twisted.internet import abstract, fdesc
from twisted.logger import Logger

from revproxy.workers.count import parse_workers

log = Logger(namespace="revproxy.workers")


def workers_wanted(options) -> int:
    """``--workers`` when given, else ``[server] workers``; always 1 in a worker."""
    if options.get("worker"):
        return 1
    if options.get("workers"):
        return parse_workers(options["workers"])
    return options.config.server.workers


def make_service(options, reactor):
    """The service for ``options``, or None when this is a plain single process."""
    if options.get("worker"):
        return worker_service(options, reactor)
    try:
        count = workers_wanted(options)
    except ValueError as e:
        raise SystemExit("revproxy: --workers: %s" % e)
    if count <= 1:
        return None
    return supervisor_service(options, reactor, count)


# -- the worker --------------------------------------------------------------------------------
def worker_loader(load, spec):
    """``load`` with what makes a config a worker's: the admin listener on the private socket
    of ``spec``, no demo backends (the supervisor serves them), and a disk cache store in a
    directory of its own (``PATH/worker-N``: a disk store is one process per directory)."""

    def worker_config():
        config = load()
        return replace(config, admin=replace(config.admin, listen=(spec.admin,)),
                       demo=replace(config.demo, enabled=False),
                       cache=worker_cache(config.cache, spec.index))

    return worker_config


def worker_cache(cache, index):
    """``[cache]`` for worker ``index``: a disk store's ``path`` gets ``/worker-N``."""
    options = dict(cache.store_options)
    if cache.store != "disk" or not options.get("path"):
        return cache
    options["path"] = os.path.join(str(options["path"]), "worker-%d" % index)
    return replace(cache, store_options=tuple(sorted(options.items())))


def worker_service(options, reactor):
    from revproxy import tap
    from revproxy.workers.inherit import adopters
    from revproxy.workers.spec import read_spec

    try:
        spec = read_spec(options["worker"])
    except ValueError as e:
        raise SystemExit("revproxy: %s" % e)
    load = worker_loader(options.load, spec)
    top = service.MultiService()
    proxy = tap.build(load(), reactor, load=load, signals=True,
                      inherited=adopters(reactor, spec), ticket_secret=spec.ticket_secret or None)
    proxy.setServiceParent(top)
    SupervisorWatch(reactor).setServiceParent(top)
    log.info("worker {index} of supervisor {pid}", index=spec.index, pid=spec.supervisor)
    return top


class _StdinPipe(abstract.FileDescriptor):
    """Reads (and drops) the supervisor's pipe on fd 0; ``gone()`` at end of file."""

    def __init__(self, reactor, gone):
        abstract.FileDescriptor.__init__(self, reactor)
        self._gone = gone
        fdesc.setNonBlocking(0)
        self.connected = 1

    def fileno(self):
        return 0

    def doRead(self):
        return fdesc.readFromFD(0, lambda data: None)

    def connectionLost(self, reason):
        abstract.FileDescriptor.connectionLost(self, reason)
        self._gone()


class SupervisorWatch(service.Service):
    """Stops this worker (gracefully, as SIGTERM does) when the supervisor's end of the stdin
    pipe closes: the supervisor died, even by SIGKILL, and nobody would stop us."""

    def __init__(self, reactor):
        self._reactor = reactor
        self._pipe = None

    def startService(self):
        service.Service.startService(self)
        self._pipe = _StdinPipe(self._reactor, self._gone)
        self._pipe.startReading()

    def stopService(self):
        service.Service.stopService(self)
        if self._pipe is not None:
            self._pipe.stopReading()

    def _gone(self):
        if self.running:
            log.warn("the supervisor is gone: stopping this worker")
            self._reactor.stop()


# -- the supervisor ----------------------------------------------------------------------------
def supervisor_service(options, reactor, count):
    from revproxy.workers.supervisor import Supervisor

    config = options.config
    return Supervisor(reactor, config, options.load, options.argv, count, wanted_sockets,
                      supervisor_sites)


def wanted_sockets(config):
    """``{("proxy", description): BindSpec}`` of every proxy listener, with the backlog the
    single process would use (``[server] backlog`` or the system's). ValueError for an
    endpoint type the supervisor cannot bind."""
    from revproxy.server.backlog import explicit_backlog, system_backlog
    from revproxy.workers.endpoints import bind_spec

    default = config.server.backlog or system_backlog()
    wanted = {}
    for description in config.server.listen:
        backlog = explicit_backlog(description) or default
        wanted[("proxy", description)] = bind_spec(description, backlog)
    return wanted


def supervisor_sites(supervisor, config):
    """The listeners the supervisor serves itself, ``(role, description, factory, endpoint)``:
    the admin API across workers (an ``ssl:`` one over revproxy's TLS, as a single process
    serves it: our defaults, ``client_auth`` with ``[tls] client_ca``; its certificate is read
    at start-up), and the demo backends when the config has them (the same ports as
    ``tap.extra_sites``). Raises ConfigError for a bad TLS admin listener."""
    from revproxy.demo import demo_site
    from revproxy.tls.endpoints import is_tls_description, parse_tls_listener
    from revproxy.workers.fanout import fanout_site

    sites = []
    holder = None
    for description in config.admin.listen:
        factory, endpoint = fanout_site(supervisor.reactor, supervisor), description
        if is_tls_description(description):
            from revproxy.tls.listener import TLSListenerFactory

            holder = holder or _tls_holder(config, supervisor.reactor)
            endpoint = parse_tls_listener(description).tcp
            factory = TLSListenerFactory(holder, description, factory)
        sites.append(("admin", description, factory, endpoint))
    if config.demo.enabled:
        for index, port in enumerate(config.demo.ports):
            description = "tcp:%d:interface=127.0.0.1" % port
            sites.append(("demo", description, demo_site("demo-%d" % (index + 1)),
                          description))
    return sites


class _Contexts:
    """What ``revproxy.tls.listener`` reads of a runtime: ``tls`` and ``clock``."""

    def __init__(self, tls, clock):
        self.tls = tls
        self.clock = clock


class _Holder:
    def __init__(self, current):
        self.current = current


def _tls_holder(config, reactor):
    from revproxy.tls.compose import alpn_protocols
    from revproxy.tls.runtime import build_tls

    return _Holder(_Contexts(build_tls(config, alpn_protocols(config), reactor.seconds()),
                             reactor))

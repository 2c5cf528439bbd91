"""``twistd revproxy``: command-line options and the one composition root.

This is the only module that touches the global reactor: everything else gets it injected.
The parts of a runtime it composes are built by ``revproxy.runtimeparts``.
"""

from __future__ import annotations

import functools
import os
import random
import sys

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from revproxy import runtimeparts as parts
from revproxy.config.errors import ConfigError
from revproxy.tls.compose import check_tls, check_upstream_tls, server_tls
from revproxy.balancing.registry import balancer_factories
from revproxy.config.load import apply_overrides, check_balancers, load_config, quick_config

log = Logger(namespace="revproxy")


class Options(usage.Options):
    synopsis = "[--config FILE] [--listen ENDPOINT ...] [--upstream URL ...]"
    longdesc = (
        "Run the revproxy reverse proxy. With no --config the embedded default config is used: "
        "it listens on 127.0.0.1:8080 and proxies to two DEMO backends it starts on 127.0.0.1:8001 "
        "and :8002. Quick start without a file: --listen tcp:8080 --upstream http://127.0.0.1:8000 "
        "(both repeatable; several upstreams form one pool). With --config, --listen replaces the "
        "file's listeners and --upstream replaces the pool of its default route. "
        "See docs/configuration.md for every config key."
    )
    optParameters = [
        ["config", "c", None, "TOML config file (default: the embedded conf/revproxy.toml)."],
        ["cache", None, None,
         "HTTP cache store: memory, disk:PATH or memcached:HOST:PORT[,HOST:PORT...] "
         "(replaces the config's [cache] store)."],
        ["worker", None, None, "(internal) run as a worker of a supervisor: its spec file."],
        ["firewall", None, None,
         "Application firewall: crs:DIR (the OWASP CRS in DIR, blocking, paranoia level 1), "
         "crs:DIR:pl=2, detect:crs:DIR (log only), crs:auto (Debian's modsecurity-crs) "
         "or off (replaces the config's [firewall] mode, crs and paranoia_level)."],
    ]
    optFlags = [
        ["check", None, "Validate the configuration, print a summary and exit."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["upstream"] = []
        self["workers"] = None
        self["admin"] = []

    def parseOptions(self, options=None):
        self.argv = list(sys.argv[1:] if options is None else options)  # workers get the same
        usage.Options.parseOptions(self, options)

    def opt_listen(self, endpoint):
        """Endpoint to listen on (repeatable): tcp:8080:interface=127.0.0.1, or HTTPS with
        ssl:8443:privateKey=key.pem:certKey=cert.pem or tls:8443 (the [tls] certificates)."""
        self["listen"].append(endpoint)

    def opt_workers(self, count):
        """Worker processes under a supervisor: N, or auto (docs/workers.md)."""
        from revproxy.workers.count import parse_workers

        try:
            self["workers"] = parse_workers(count)
        except ValueError as e:
            raise usage.UsageError("--workers: %s" % e)

    def opt_admin(self, endpoint):
        """Admin API endpoint (repeatable; replaces [admin] listen), e.g.
        tcp:9901:interface=127.0.0.1 (docs/admin.md)."""
        self["admin"].append(endpoint)

    def opt_upstream(self, url):
        """Backend member URL, e.g. http://127.0.0.1:8000 (repeatable: one pool)."""
        self["upstream"].append(url)

    def postOptions(self):
        self.load = config_loader(self["config"], self["listen"], self["upstream"], self["cache"],
                                  self["firewall"], self["admin"])
        try:
            config = self.load()
            check_balancers(config, {name: factory.description
                                     for name, factory in balancer_factories().items()})
            parts.check_hook_plugins(config)
            if self["check"]:
                check_upstream_tls(config)  # start-up reads them while building
            check_tls(config)
            if self["check"]:
                _check_firewall(config)
        except ConfigError as e:
            # A config error is not a usage error: say what is wrong, not the whole --help.
            problems = getattr(e, "problems", None)
            if problems:  # bad certificates: one line each, naming the file
                raise SystemExit("\n".join("revproxy: bad certificate: %s" % p
                                           for p in problems))
            raise SystemExit("revproxy: bad configuration: %s" % e)
        self.config = config
        if self["check"]:
            _check_ip_lists(config)
            sys.stdout.write("%s: OK (%d listeners, %d pools, %d routes)\n" % (
                config.source, len(config.server.listen), len(config.pools), len(config.routes)))
            raise SystemExit(0)


def config_loader(path, listen, upstreams, cache, firewall=None, admin=()):
    """A function that reads the config as the command line asks: the file (or the embedded
    default) with ``--listen``/``--upstream``/``--cache``/``--firewall``/``--admin`` applied.
    Start-up and every reload call it; it raises ``ConfigError``."""
    from revproxy.admin.settings import with_admin_listen

    listen, upstreams, admin = list(listen), list(upstreams), list(admin)

    def load():
        if path is None and upstreams:
            config = quick_config(listen, upstreams, cache)
        else:
            config = apply_overrides(load_config(path), listen, upstreams, cache)
        if firewall:
            from dataclasses import replace

            from revproxy.config.firewall import apply_firewall_flag

            config = replace(config, firewall=apply_firewall_flag(config.firewall, firewall))
        return with_admin_listen(config, admin)

    return load


def build(config, reactor, randbytes=None, batch_writes=True, load=None, signals=False,
          inherited=None, ticket_secret=None):
    """Wire every object for ``config`` on ``reactor``; returns the ``ProxyService``.

    ``load`` re-reads the config on reload (default: ``config`` again); ``signals`` installs
    the SIGHUP (reload) and SIGUSR1 (reopen log files) handlers when the service starts;
    ``inherited`` (a worker's sockets, ``revproxy.workers.inherit.adopters``) replaces
    listening on those endpoints; ``ticket_secret`` (a worker's, from its supervisor) is what
    TLS session ticket keys derive from (default: a new random one).
    """
    from revproxy.admin.control import AdminControl
    from revproxy.admin.recorder import RequestRecorder
    from revproxy.netio import Outbox
    from revproxy.server.logfiles import LogFiles
    from revproxy.server.reload import Reloader
    from revproxy.server.runtime import RuntimeHolder, Shared, Stats
    from revproxy.server.service import ProxyService
    from revproxy.timers import Deadlines
    from revproxy.upstream.spool import SpoolBudget

    rng = random.Random(os.urandom(32) if randbytes is None else randbytes(32))
    if randbytes is None:
        randbytes = rng.randbytes
    buffering = config.buffering
    shared = Shared(reactor, rng, randbytes,
                    Stats(config.limits.max_connections, config.limits.max_connections_per_ip),
                    SpoolBudget(buffering.total_memory, buffering.total_disk), Deadlines(reactor),
                    Outbox(reactor, batch_writes), LogFiles())
    shared.recorder = RequestRecorder()  # per-request counts for the admin API and metrics
    shared.ticket_from_supervisor = ticket_secret is not None
    shared.ticket_secret = ticket_secret or os.urandom(32)
    try:
        runtime = build_runtime(config, shared)
    except ConfigError as e:
        raise SystemExit("revproxy: bad configuration: %s" % e)
    shared.apply(config)
    holder = RuntimeHolder(runtime)
    control = AdminControl(holder, shared.recorder)
    service = ProxyService(reactor, holder, functools.partial(extra_sites, control=control),
                           inherited=inherited)
    service.reloader = Reloader(service, shared, load or (lambda: config), build_runtime)
    control.reloader = service.reloader
    service.admin = control
    if signals:
        import signal

        from revproxy.server.signals import SignalHandlers

        service.signals = SignalHandlers(reactor, {signal.SIGHUP: service.reloader.reload,
                                                   signal.SIGUSR1: shared.logs.reopen})
    return service


def build_runtime(config, shared, previous=None):
    """The ``Runtime`` of ``config``: the one place a runtime is made, at start-up and on reload.

    With ``previous`` (the running runtime) it reuses what did not change: a pool whose
    settings are the same keeps its ``BalancedPool`` (balancer state, idle connections; only
    its membership is updated later when members changed), an unchanged ``[cache]`` keeps its
    ``HttpCache``, an unchanged store its store object, an unchanged temp dir and access log
    theirs. Nothing running is modified here, so a refused reload leaves no trace. Raises
    ``ConfigError`` naming the file and key for everything start-up checks.
    """
    from revproxy.server.runtime import Runtime

    factories = balancer_factories()
    check_balancers(config, {name: factory.description for name, factory in factories.items()})
    user_hooks = _hooks(config, shared.reactor, previous)
    rate_limits = parts.rate_limits(config, shared.reactor, previous)
    hooks = user_hooks
    firewall = parts.firewall(config, shared.reactor, previous)
    if firewall is not None:  # after IP lists and rate limits, before the [[hooks]]
        from revproxy.pipeline.hooks import HookSet

        hooks = HookSet((firewall.hook,) + user_hooks.hooks)
    if rate_limits is not None:  # built-in hooks run before the user's
        from revproxy.pipeline.hooks import HookSet

        hooks = HookSet((rate_limits,) + hooks.hooks)
    ip_access, hooks = _ip_access(config, shared.reactor, previous, hooks)  # IP lists first
    tls = server_tls(config, shared)
    runtime = Runtime(
        config, shared.reactor, shared.stats, shared.budget, parts.temp_dir(config, previous),
        parts.access_log(config, shared, previous),
        parts.backends(config, shared, previous, factories, tls.provider),
        shared.randbytes, shared.deadlines, shared.outbox,
        parts.cache(config, shared.reactor, previous),
        hooks, tls, rng=shared.rng,
    )
    runtime.user_hooks = user_hooks
    runtime.ip_access = ip_access
    runtime.rate_limits = rate_limits
    runtime.firewall = firewall
    runtime.recorder = getattr(shared, "recorder", None)
    runtime.admin_token = parts.admin_token(config)
    from revproxy.server.mirror import keep_mirror_stages

    keep_mirror_stages(runtime, previous)  # an unchanged mirror keeps its counters
    parts.log_compression(config)
    return runtime


def _ip_access(config, reactor, previous, user_hooks):
    """The ``IPAccess`` of ``[[ip_lists]]`` (files read again on every reload), and the
    runtime's hooks: the built-in route IP-list hook, when some list has routes, before the
    ``[[hooks]]`` plugins."""
    from revproxy.pipeline.hooks import HookSet
    from revproxy.protection.iphook import IPListHook
    from revproxy.protection.iplists import build_ip_access

    access = build_ip_access(config, reactor, previous.ip_access if previous is not None else None)
    if access is None or not access.routes:
        return access, user_hooks
    return access, HookSet((IPListHook(access),) + user_hooks.hooks)


def _check_firewall(config):
    """``--check``: compile the firewall's rules (ConfigError naming file and line)."""
    from revproxy.firewall.build import build_firewall

    build_firewall(config, None)


def _check_ip_lists(config):
    """``--check``: read every IP list file and check every scope (ConfigError)."""
    from revproxy.protection.iplists import build_ip_access

    try:
        build_ip_access(config, clock=None)
    except ConfigError as e:
        raise SystemExit("revproxy: bad configuration: %s" % e)


def _hooks(config, reactor, previous):
    """The ``HookSet``: the built-in transport stages the routes need (HTTPS redirect,
    HSTS: ``revproxy.pipeline.transport``) first, then ``[[hooks]]``."""
    from revproxy.pipeline.hooks import HookSet
    from revproxy.pipeline.transport import is_transport_hook, transport_hooks

    builtin = transport_hooks(config.routes)
    user = parts.user_hooks(config, reactor, previous)
    if not builtin and not any(is_transport_hook(h) for h in user.hooks):
        return user
    return HookSet(builtin + tuple(h for h in user.hooks if not is_transport_hook(h)))


def extra_sites(holder, config, control=None):
    """The listeners besides the proxy's: ``(role, description, factory)`` for the admin
    listener(s) and the demo backends. ``control``: the admin API's ``AdminControl``."""
    from revproxy.admin.site import admin_site
    from revproxy.demo import demo_site

    sites = [("admin", description, admin_site(holder, control))
             for description in config.admin.listen]
    if config.demo.enabled:
        for index, port in enumerate(config.demo.ports):
            sites.append(("demo", "tcp:%d:interface=127.0.0.1" % port,
                          demo_site("demo-%d" % (index + 1))))
    return sites


def _startup_limits(config):
    """Raise the open-files limit (before any listener) and log the effective limits."""
    from revproxy.protection.fdlimit import limit_lines, raise_open_files

    limits = config.limits
    for level, text in limit_lines(raise_open_files(), limits.max_connections,
                                   limits.max_connections_per_ip):
        getattr(log, level)("{text}", text=text)


def makeService(options):
    from revproxy import nursery

    nursery.ensure()  # PyPy: run again with a bigger young generation (nursery.py)
    from twisted.internet import reactor

    from revproxy import fastpoll

    fastpoll.install(reactor)  # the epoll loop without a log context per event
    top = service.MultiService()
    _startup_limits(options.config)
    from revproxy.workers.compose import make_service as workers_service

    several = workers_service(options, reactor)  # a supervisor or one of its workers
    if several is not None:
        several.setServiceParent(top)
    else:
        build(options.config, reactor, load=options.load, signals=True).setServiceParent(top)
    reactor.callWhenRunning(_freeze_startup_heap)
    return top


def _freeze_startup_heap():
    from revproxy.gcfreeze import freeze_startup_heap

    frozen = freeze_startup_heap()
    if frozen:
        log.info("gc: {count} start-up objects frozen (kept out of full collections)",
                 count=frozen)
    from revproxy.nursery import VARIABLE, nursery_note

    note = nursery_note()
    if note:
        log.info("gc: PyPy nursery {size} ({variable}, revproxy/nursery.py)", size=note,
                 variable=VARIABLE)

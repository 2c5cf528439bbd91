"""``twistd revproxy``: command-line options and the one composition root.

This is the only module that touches the global reactor: everything else gets it injected.
"""

from __future__ import annotations

import functools
import os
import random
import sys

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from revproxy.config.errors import ConfigError
from revproxy.tls.compose import check_tls, check_upstream_tls, client_tls, server_tls
from revproxy.balancing.registry import balancer_factories
from revproxy.config.load import (
    apply_overrides, check_balancers, check_hooks, load_config, quick_config,
)

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
            _check_hooks(config)
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
    rate_limits = _rate_limits(config, shared.reactor, previous)
    hooks = user_hooks
    firewall = _firewall(config, shared.reactor, previous)
    if firewall is not None:  # after IP lists and rate limits, before the [[hooks]]
        from revproxy.pipeline.hooks import HookSet

        hooks = HookSet((firewall.hook,) + user_hooks.hooks)
    if rate_limits is not None:  # built-in hooks run before the user's
        from revproxy.pipeline.hooks import HookSet

        hooks = HookSet((rate_limits,) + hooks.hooks)
    ip_access, hooks = _ip_access(config, shared.reactor, previous, hooks)  # IP lists first
    tls = server_tls(config, shared)
    runtime = Runtime(
        config, shared.reactor, shared.stats, shared.budget, _temp_dir(config, previous),
        _access_log(config, shared, previous),
        _backends(config, shared, previous, factories, tls.provider),
        shared.randbytes, shared.deadlines, shared.outbox, _cache(config, shared.reactor, previous),
        hooks, tls, rng=shared.rng,
    )
    runtime.user_hooks = user_hooks
    runtime.ip_access = ip_access
    runtime.rate_limits = rate_limits
    runtime.firewall = firewall
    runtime.recorder = getattr(shared, "recorder", None)
    runtime.admin_token = _admin_token(config)
    from revproxy.server.mirror import keep_mirror_stages

    keep_mirror_stages(runtime, previous)  # an unchanged mirror keeps its counters
    _log_compression(config)
    return runtime


def _admin_token(config):
    """The admin API's bearer token (``[admin] token`` or ``token_file``, read now), or
    None; ConfigError when it cannot be had."""
    from revproxy.admin.auth import configured_token

    return configured_token(config)


def _log_compression(config):
    """One line naming the codings this interpreter can produce, when a route compresses;
    a configured coding that is missing is named with what to install."""
    routes = [route.name for route in config.routes if route.compress]
    if not routes:
        return
    from revproxy.compression.encoders import describe, usable

    wanted = config.compression.codings
    have = usable(wanted)
    log.info("compression on route(s) {routes}: offering {have}; available here: {desc}",
             routes=", ".join(routes), have=", ".join(have) or "nothing", desc=describe())
    missing = [name for name in wanted if name not in have]
    if missing:
        say = log.info if have else log.warn  # with nothing left, compression is off
        say("[compression] codings {missing} not installed here; not offered",
            missing=", ".join(missing))


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


def _firewall(config, reactor, previous):
    """The ``Firewall`` of ``[firewall]`` (None when off): rule files read and compiled again
    on every call (start-up and each reload); its counters carry over from ``previous``."""
    from revproxy.firewall.build import build_firewall

    running = getattr(previous, "firewall", None) if previous is not None else None
    return build_firewall(config, reactor, running)


def _check_firewall(config):
    """``--check``: compile the firewall's rules (ConfigError naming file and line)."""
    from revproxy.firewall.build import build_firewall

    build_firewall(config, None)


def _rate_limits(config, reactor, previous):
    """The built-in rate-limit hook of ``[[rate_limits]]`` (None when there is none); an
    unchanged limit keeps its buckets from ``previous`` (see revproxy.protection.ratecompose)."""
    from revproxy.protection.ratecompose import build_rate_limit_hook

    running = getattr(previous, "rate_limits", None) if previous is not None else None
    return build_rate_limit_hook(config, reactor, running)


def _temp_dir(config, previous):
    from revproxy.upstream.spool import TempDirError, clean_temp_dir, make_temp_dir

    wanted = config.buffering.temp_dir
    if previous is not None and previous.config.buffering.temp_dir == wanted:
        return previous.temp_dir
    try:
        temp_dir = make_temp_dir(wanted, os.getuid())
    except TempDirError as e:
        raise ConfigError(config.source, "[buffering] temp_dir", wanted, str(e))
    except OSError as e:
        raise ConfigError(config.source, "[buffering] temp_dir", wanted,
                          "cannot use it: %s" % (e.strerror or e))
    # Spool files are unlinked at creation: whatever is there was left by a crashed process.
    removed = clean_temp_dir(temp_dir)
    if removed:
        log.info("removed {n} leftover spool files from {d}", n=removed, d=temp_dir)
    return temp_dir


def _check_hooks(config):
    """Refuse ``[[hooks]]`` entries naming no installed hook plugin (ConfigError)."""
    if config.hooks:
        from revproxy.pipeline.registry import hook_factories

        check_hooks(config, {name: factory.description
                             for name, factory in hook_factories().items()})


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
    user = _user_hooks(config, reactor, previous)
    if not builtin and not any(is_transport_hook(h) for h in user.hooks):
        return user
    return HookSet(builtin + tuple(h for h in user.hooks if not is_transport_hook(h)))


def _user_hooks(config, reactor, previous):
    """The ``HookSet`` of ``[[hooks]]``: kept when the entries did not change, else built
    anew (a reload rebuilds every hook: hooks hold no state the proxy must carry over)."""
    from revproxy.config.errors import NO_VALUE
    from revproxy.pipeline.registry import HookBuildError, build_hooks

    if previous is not None and previous.config.hooks == config.hooks:
        return previous.user_hooks if previous.user_hooks is not None else previous.hooks
    _check_hooks(config)
    try:
        return build_hooks(config, reactor)
    except HookBuildError as e:
        raise ConfigError(config.source, "[[hooks]] #%d options" % (e.index + 1), NO_VALUE,
                          "plugin %r: %s" % (e.plugin, e.message))
    except TypeError as e:
        raise ConfigError(config.source, "[[hooks]]", NO_VALUE, str(e))


def _access_log(config, shared, previous):
    from revproxy.server.accesslog import AccessLog

    logging = config.logging
    if previous is not None and previous.config.logging == logging:
        return previous.access_log
    streams = {}
    for key in ("access_log", "error_log"):  # both opened now: a reload must not fail later
        path = getattr(logging, key)
        if path:
            try:
                streams[key] = shared.logs.open(path)
            except OSError as e:
                raise ConfigError(config.source, "[logging] %s" % key, path,
                                  "cannot open it: %s" % (e.strerror or e))
    if not logging.access_log:
        return None  # off: records are not even built
    return AccessLog(streams["access_log"].write, logging.access_format)


def _backends(config, shared, previous, factories, provider=None):
    from revproxy.balancing.pool import BalancedPool
    from revproxy.balancing.registry import build_balancer
    from revproxy.config.diff import REBUILD, pool_change
    from revproxy.config.reader import table_key
    from revproxy.server.runtime import parser_limits_for
    from revproxy.upstream.tls import has_tls_members

    running = previous.backends if previous is not None else {}
    backends = {}
    for pool in config.pools:
        kept = running.get(pool.name)
        if (kept is not None and pool_change(kept.config, pool) != REBUILD
                and (kept.tls is None) == (not has_tls_members(pool))):
            backends[pool.name] = kept
            continue
        tls = client_tls(config, pool, provider)
        try:
            balancer = build_balancer(pool.balance, dict(pool.balance_options), shared.rng,
                                      factories)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(config.source, "[pools.%s] balance" % table_key(pool.name),
                              pool.balance, str(e).strip("'\""))
        backends[pool.name] = BalancedPool(shared.reactor, pool, parser_limits_for(config.limits),
                                           shared.deadlines, shared.outbox, balancer, tls)
        if kept is not None:  # operator overrides (admin API) outlive a rebuild
            backends[pool.name].overrides = dict(kept.overrides)
    return backends


def _cache(config, reactor, previous):
    """The HTTP cache of ``[cache]``, or None when no store is configured."""
    from revproxy.cache.engine import HttpCache
    from revproxy.cache.registry import build_store

    settings = config.cache
    if not settings.store:
        return None
    running = previous.cache if previous is not None else None
    if running is not None and running.settings == settings:
        return running
    if running is not None and (running.settings.store, running.settings.store_options) == (
            settings.store, settings.store_options):
        cache = HttpCache(running.store, settings, reactor)
        cache.metrics = running.metrics  # the same store: its counts go on
        return cache
    try:
        store = build_store(settings.store, dict(settings.store_options), reactor)
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(config.source, "[cache] store", settings.store, str(e).strip("'\""))
    return HttpCache(store, settings, reactor)


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

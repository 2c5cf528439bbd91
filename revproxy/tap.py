"""``twistd revproxy``: command-line options and the one composition root.

This is the only module that touches the global reactor: everything else gets it injected.
"""

from __future__ import annotations

import os
import random
import sys

from twisted.application import service
from twisted.logger import FileLogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher
from twisted.python import usage

from revproxy.config.errors import ConfigError
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
    ]
    optFlags = [
        ["check", None, "Validate the configuration, print a summary and exit."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["upstream"] = []

    def opt_listen(self, endpoint):
        """Twisted server endpoint to listen on, e.g. tcp:8080:interface=127.0.0.1 (repeatable)."""
        self["listen"].append(endpoint)

    def opt_upstream(self, url):
        """Backend member URL, e.g. http://127.0.0.1:8000 (repeatable: one pool)."""
        self["upstream"].append(url)

    def postOptions(self):
        try:
            if self["config"] is None and self["upstream"]:
                config = quick_config(self["listen"], self["upstream"], self["cache"])
            else:
                config = apply_overrides(load_config(self["config"]), self["listen"],
                                         self["upstream"], self["cache"])
            check_balancers(config, {name: factory.description
                                     for name, factory in balancer_factories().items()})
            if config.hooks:
                from revproxy.pipeline.registry import hook_factories

                check_hooks(config, {name: factory.description
                                     for name, factory in hook_factories().items()})
        except ConfigError as e:
            # A config error is not a usage error: say what is wrong, not the whole --help.
            raise SystemExit("revproxy: bad configuration: %s" % e)
        self.config = config
        if self["check"]:
            sys.stdout.write("%s: OK (%d listeners, %d pools, %d routes)\n" % (
                config.source, len(config.server.listen), len(config.pools), len(config.routes)))
            raise SystemExit(0)


def _open_log(path, mode="a"):
    if path == "-":
        return sys.stdout
    return open(path, mode, buffering=1, encoding="utf-8")


def build(config, reactor, randbytes=None, batch_writes=True):
    """Wire every object for ``config`` on ``reactor``; returns the ``ProxyService``."""
    from revproxy.admin.status import admin_site
    from revproxy.demo import demo_site
    from revproxy.server.accesslog import AccessLog
    from revproxy.server.runtime import Runtime, RuntimeHolder, Stats, parser_limits_for
    from revproxy.server.service import ProxyService
    from revproxy.netio import Outbox
    from revproxy.timers import Deadlines
    from revproxy.balancing.pool import BalancedPool
    from revproxy.balancing.registry import build_balancer
    from revproxy.upstream.resolve import MemberResolver
    from revproxy.upstream.spool import SpoolBudget, TempDirError, clean_temp_dir, make_temp_dir

    rng = random.Random(os.urandom(32) if randbytes is None else randbytes(32))
    if randbytes is None:
        randbytes = rng.randbytes
    buffering = config.buffering
    try:
        temp_dir = make_temp_dir(buffering.temp_dir, os.getuid())
    except (OSError, TempDirError) as e:
        raise SystemExit("revproxy: bad configuration: %s: [buffering] temp_dir = %r: %s"
                         % (config.source, buffering.temp_dir, e))
    removed = clean_temp_dir(temp_dir)
    if removed:
        log.info("removed {n} leftover spool files from {d}", n=removed, d=temp_dir)
    budget = SpoolBudget(buffering.total_memory, buffering.total_disk)
    logging = config.logging
    if logging.access_log:
        stream = _open_log(logging.access_log)
        access_log = AccessLog(stream.write, logging.access_format)
    else:
        access_log = None  # off: records are not even built
    if logging.error_log not in ("", "-"):
        globalLogPublisher.addObserver(
            FileLogObserver(_open_log(logging.error_log), formatEventAsClassicLogText)
        )
    stats = Stats(config.limits.max_connections)
    limits = parser_limits_for(config.limits)
    deadlines = Deadlines(reactor)
    outbox = Outbox(reactor, batch_writes)
    backends = {}
    for pool in config.pools:
        balancer = build_balancer(pool.balance, dict(pool.balance_options), rng)
        backends[pool.name] = BalancedPool(reactor, pool, limits, deadlines, outbox, balancer)
    runtime = Runtime(
        config, reactor, stats, budget, temp_dir, access_log, backends, randbytes, deadlines, outbox,
        _cache(config, reactor), _hooks(config, reactor),
    )
    resolvers = [MemberResolver(reactor, reactor.nameResolver, b) for b in backends.values()]
    holder = RuntimeHolder(runtime)
    watchers = _watchers(reactor, backends)
    if runtime.cache is not None:
        from revproxy.cache.engine import StoreSweeper

        watchers.append(StoreSweeper(reactor, runtime.cache.store))
    sites = [(description, admin_site(holder)) for description in config.admin.listen]
    if config.demo.enabled:
        for index, port in enumerate(config.demo.ports):
            sites.append(("tcp:%d:interface=127.0.0.1" % port, demo_site("demo-%d" % (index + 1))))
    return ProxyService(reactor, holder, resolvers, sites, watchers)


def _hooks(config, reactor):
    """The configured pipeline hooks (``[[hooks]]``), or exit naming the bad entry."""
    from revproxy.pipeline.registry import build_hooks

    try:
        return build_hooks(config, reactor)
    except (ValueError, TypeError) as e:
        raise SystemExit("revproxy: bad configuration: %s" % e)


def _cache(config, reactor):
    """The HTTP cache of ``[cache]``, or None when no store is configured."""
    from revproxy.cache.engine import HttpCache
    from revproxy.cache.registry import build_store

    settings = config.cache
    if not settings.store:
        return None
    try:
        store = build_store(settings.store, dict(settings.store_options), reactor)
    except (KeyError, ValueError) as e:
        raise SystemExit("revproxy: bad configuration: %s: [cache] store = %r: %s"
                         % (config.source, settings.store, e))
    return HttpCache(store, settings, reactor)


def _watchers(reactor, backends):
    """Active health checkers and agent pollers for the pools that configure them."""
    from revproxy.balancing.agent import AgentPoller
    from revproxy.balancing.probe import ActiveChecker

    watchers = []
    for pool in backends.values():
        config = pool.config
        members = (lambda p: lambda: p.members)(pool)
        if config.health is not None:
            watchers.append(ActiveChecker(
                reactor, reactor, members, config.health,
                (lambda p: lambda member, ok, why: p.probe_result(member, ok, why))(pool)))
        if config.agent_port:
            watchers.append(AgentPoller(reactor, reactor, members, config.agent_port,
                                        config.agent_interval, pool.report))
    return watchers


def makeService(options):
    from twisted.internet import reactor

    top = service.MultiService()
    build(options.config, reactor).setServiceParent(top)
    return top

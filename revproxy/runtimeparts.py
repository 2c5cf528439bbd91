"""The parts of a ``Runtime`` that ``tap.build_runtime`` composes, each on its own.

Each builder makes one part from the config (temp dir, access log, pools, cache, user
hooks, rate limits, firewall, admin token) or, given ``previous`` (the running runtime),
keeps that runtime's part when its settings did not change; none modifies anything running,
so a refused reload leaves no trace. They raise ``ConfigError`` naming the file and key.
``check_hook_plugins`` and ``log_compression`` are the check and the log line that go with
them. Which parts make a runtime, and in which order the hooks run, is decided in
``revproxy.tap`` (the composition root), not here.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

from revproxy.config.errors import ConfigError
from revproxy.config.load import check_hooks
from revproxy.tls.compose import client_tls

log = Logger(namespace="revproxy")


def admin_token(config):
    """The admin API's bearer token (``[admin] token`` or ``token_file``, read now), or
    None; ConfigError when it cannot be had."""
    from revproxy.admin.auth import configured_token

    return configured_token(config)


def log_compression(config):
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


def firewall(config, reactor, previous):
    """The ``Firewall`` of ``[firewall]`` (None when off): rule files read and compiled again
    on every call (start-up and each reload); its counters carry over from ``previous``."""
    from revproxy.firewall.build import build_firewall

    running = getattr(previous, "firewall", None) if previous is not None else None
    return build_firewall(config, reactor, running)


def rate_limits(config, reactor, previous):
    """The built-in rate-limit hook of ``[[rate_limits]]`` (None when there is none); an
    unchanged limit keeps its buckets from ``previous`` (see revproxy.protection.ratecompose)."""
    from revproxy.protection.ratecompose import build_rate_limit_hook

    running = getattr(previous, "rate_limits", None) if previous is not None else None
    return build_rate_limit_hook(config, reactor, running)


def temp_dir(config, previous):
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


def check_hook_plugins(config):
    """Refuse ``[[hooks]]`` entries naming no installed hook plugin (ConfigError)."""
    if config.hooks:
        from revproxy.pipeline.registry import hook_factories

        check_hooks(config, {name: factory.description
                             for name, factory in hook_factories().items()})


def user_hooks(config, reactor, previous):
    """The ``HookSet`` of ``[[hooks]]``: kept when the entries did not change, else built
    anew (a reload rebuilds every hook: hooks hold no state the proxy must carry over)."""
    from revproxy.config.errors import NO_VALUE
    from revproxy.pipeline.registry import HookBuildError, build_hooks

    if previous is not None and previous.config.hooks == config.hooks:
        return previous.user_hooks if previous.user_hooks is not None else previous.hooks
    check_hook_plugins(config)
    try:
        return build_hooks(config, reactor)
    except HookBuildError as e:
        raise ConfigError(config.source, "[[hooks]] #%d options" % (e.index + 1), NO_VALUE,
                          "plugin %r: %s" % (e.plugin, e.message))
    except TypeError as e:
        raise ConfigError(config.source, "[[hooks]]", NO_VALUE, str(e))


def access_log(config, shared, previous):
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


def backends(config, shared, previous, factories, provider=None):
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


def cache(config, reactor, previous):
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

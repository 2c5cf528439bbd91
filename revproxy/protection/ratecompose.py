"""Building the rate-limit hook of a config, keeping what a reload must not lose.

A limiter whose ``[[rate_limits]]`` entry is unchanged keeps its buckets and counts across
a reload (SIGHUP); a changed or new entry starts with full buckets. The memcached client of
shared limits is kept while ``[rate_limits_shared]`` is unchanged.
"""

from __future__ import annotations

from revproxy.protection.ratelimit import ByteRateLimitHook, Limiter, RateLimitHook
from revproxy.protection.ratekeys import key_function
from revproxy.upstream.headers import ForwardingPolicy


def build_rate_limit_hook(config, reactor, previous=None):
    """The ``RateLimitHook`` of ``config.rate_limits`` (None when there is no limit).
    ``previous`` is the running hook (or None); nothing of it is modified."""
    settings = config.rate_limits
    if not settings.limits:
        return None
    server = config.server
    forwarding = ForwardingPolicy(server.proxy_name, server.trusted_proxies, b"-")
    trust = bool(server.trusted_proxies)
    kept = {}
    if previous is not None:
        kept = {limiter.spec: limiter for limiter in previous.limiters}
    shared = None
    if any(spec.shared for spec in settings.limits):
        if previous is not None and previous.shared is not None and \
                previous.shared.settings == settings.shared:
            shared = previous.shared
        else:
            shared = _shared_counters(settings.shared, reactor)
    limiters = []
    for spec in settings.limits:
        old = kept.get(spec)
        limiters.append(Limiter(
            spec, key_function(spec.key, forwarding, trust), reactor,
            table=old.table if old is not None else None,
            counts=old.counts if old is not None else None, shared=shared))
    cls = ByteRateLimitHook if any(spec.unit == "bytes" for spec in settings.limits) \
        else RateLimitHook
    return cls(limiters, [route.name for route in config.routes], reactor, shared)


def _shared_counters(settings, reactor):
    from revproxy.cache.stores.memcached_client import MemcachedClient
    from revproxy.cache.stores.memcached_options import parse_server
    from revproxy.protection.shared import SharedCounters

    servers = [parse_server(text) for text in settings.servers]
    client = MemcachedClient(reactor, servers, settings.connections_per_server,
                             settings.timeout)
    return SharedCounters(client, settings, reactor)

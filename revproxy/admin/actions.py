"""What the admin API's POST calls do: member overrides, cache purge, reload.

Each action takes the runtime (and its arguments, already decoded) and returns
``(status, document)`` or a Deferred of it; refusals are ``(4xx, {"error": "..."})``.
Member actions change the live balancer state (``BalancedPool.set_admin_state`` /
``set_admin_weight``); a reload keeps them (a kept pool keeps its member states, a rebuilt
one is handed the pool's ``overrides``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from twisted.internet import defer

from revproxy.balancing.member import DISABLED, DRAINING

MAX_WEIGHT = 1000
MEMBER_ACTIONS = ("drain", "enable", "disable", "weight")


def error(status: int, message: str):
    return status, {"error": message}


def find_member(runtime, pool_name: str, member_name: str):
    """``(pool, member, None)`` or ``(None, None, (404, {"error"}))``."""
    pool = runtime.backends.get(pool_name)
    if pool is None:
        return None, None, error(404, "no pool %r (pools: %s)" % (
            pool_name, ", ".join(sorted(runtime.backends)) or "none"))
    member = pool.member_named(member_name)
    if member is None:
        return None, None, error(404, "pool %r has no member %r (members: %s)" % (
            pool_name, member_name, ", ".join(m.name for m in pool.members) or "none"))
    return pool, member, None


def parse_weight(value):
    """A weight from JSON (int, or null to go back to the configured one) or a query
    string (text); raises ValueError with what was expected."""
    if value is None or value == "null":
        return None
    if isinstance(value, bool):
        raise ValueError("expected an integer weight 0..%d (or null)" % MAX_WEIGHT)
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError("expected an integer weight 0..%d (or null)" % MAX_WEIGHT)
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        raise ValueError("expected an integer weight 0..%d (or null)" % MAX_WEIGHT)
    return value


def member_action(runtime, pool_name, member_name, action, weight=None):
    """``drain`` / ``disable`` / ``enable`` ``member_name`` of ``pool_name``, or set its
    ``weight`` (already parsed: an int, or None for the configured weight)."""
    pool, member, refusal = find_member(runtime, pool_name, member_name)
    if refusal is not None:
        return refusal
    if action == "weight":
        pool.set_admin_weight(member, weight)
    else:
        pool.set_admin_state(member, {"drain": DRAINING, "disable": DISABLED,
                                      "enable": None}[action])
    state = member.state
    now = runtime.clock.seconds()
    return 200, {"pool": pool.name, "member": member.name, "state": state.status(now),
                 "admin_state": state.admin_state, "weight": round(member.weight, 3),
                 "admin_weight": state.admin_weight, "in_flight": member.in_flight}


def purge(runtime, selector: str, value: str, soft: bool):
    """Purge the cache by ``url``, ``prefix`` or ``tag``: a Deferred of
    ``(200, {"purged": N})`` (-1: the store cannot count), or a refusal."""
    cache = runtime.cache
    if cache is None:
        return error(409, "no [cache] store configured")
    raw = value.encode("utf-8")
    if selector == "url":
        key = url_key(raw, cache.settings)
        if key is None:
            return error(400, "url must be http(s)://host/path")
        d = cache.purge_url(key, soft)
    elif selector == "prefix":
        d = cache.store.purge(prefix=raw, soft=soft)
    elif selector == "tag":
        d = cache.store.purge(tag=raw, soft=soft)
    else:
        return error(400, "give exactly one of url, prefix, tag")
    d = defer.maybeDeferred(lambda: d)
    d.addCallback(lambda count: (200, {"purged": count, selector: value, "soft": soft}))
    return d


def reload(reloader):
    """Reload as SIGHUP does: ``(200, {"reloaded": true, "generation": n})``, or
    ``(409, {"reloaded": false, "error": why})`` when the new config was refused (the
    running one stays)."""
    if reloader is None:
        return error(503, "reload is not available here")
    if reloader.reload():
        return 200, {"reloaded": True, "generation": reloader.generation}
    return 409, {"reloaded": False, "error": reloader.last_error or "refused",
                 "generation": reloader.generation}


def url_key(url: bytes, settings):
    """The primary cache key of an absolute http or https URL (the scheme is part of the
    key: a page served over an ssl: listener is purged with its https URL), or None."""
    from revproxy.cache.keys import primary_key
    from revproxy.routing.normalize import normalize_target

    try:
        text = url.decode("ascii")
        parts = urlsplit(text)
        target = normalize_target((parts.path or "/").encode("ascii"))
    except Exception:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = parts.query if "?" in text else None
    return primary_key(parts.scheme.encode("ascii"), parts.netloc.encode("ascii"), target.path,
                       query, settings, [])

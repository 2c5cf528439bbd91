"""``example-ttl-cap``: the memory store, with every value kept at most ``max_ttl`` seconds
whatever the response allowed. Written as a wrapper: it provides ICacheStore by
delegating to the store it wraps, changing only ``put``'s ttl."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import ICacheStore


@implementer(ICacheStore)
class TTLCapStore:
    name = "example-ttl-cap"

    def __init__(self, inner, max_ttl: float):
        self._inner = inner
        self.max_ttl = max_ttl

    def get(self, key):
        return self._inner.get(key)

    def put(self, key, value, ttl, tags=()):
        return self._inner.put(key, value, min(ttl, self.max_ttl), tags)

    def delete(self, key):
        return self._inner.delete(key)

    def purge(self, prefix=None, tag=None, soft=False):
        return self._inner.purge(prefix=prefix, tag=tag, soft=soft)

    def stats(self):
        stats = dict(self._inner.stats())
        stats["max_ttl"] = self.max_ttl
        return stats

    def close(self):
        return self._inner.close()


def build(options, reactor):
    """``max_ttl`` (seconds, > 0, default 300); the rest goes to the memory store
    (``max_bytes``, ``max_object``)."""
    from revproxy.cache.stores.memory import MemoryStore

    options = dict(options)
    max_ttl = options.pop("max_ttl", 300)
    if isinstance(max_ttl, bool) or not isinstance(max_ttl, (int, float)) or max_ttl <= 0:
        raise ValueError("max_ttl: expected a number of seconds > 0, not %r" % (max_ttl,))
    return TTLCapStore(MemoryStore.from_options(options, reactor), float(max_ttl))

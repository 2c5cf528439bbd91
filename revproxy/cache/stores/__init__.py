"""The built-in ``ICacheStore`` implementations: ``memory.MemoryStore`` (objects in this
process), ``disk.DiskStore`` (one file per value, kept across restarts) and
``memcached.MemcachedStore`` (shared by several proxies).

Nothing is imported here: discovery and config checking import ``revproxy.plugins``, and a
store's module is imported only when a cache uses it.
"""

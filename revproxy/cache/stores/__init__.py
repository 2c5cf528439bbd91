"""The built-in ``ICacheStore`` implementations: ``memory.MemoryStore`` (objects in this
process) and ``disk.DiskStore`` (one file per value, kept across restarts).

Nothing is imported here: discovery and config checking import ``revproxy.plugins``, and a
store's module is imported only when a cache uses it.
"""

"""The built-in cache stores, offered as ``ICacheStoreFactory`` plugins.

Discovery imports this module, so it stays light: a store's module is imported only when
a cache uses it.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import ICacheStoreFactory


@implementer(IPlugin, ICacheStoreFactory)
class BuiltinStoreFactory:
    """Builds with ``Class.from_options(options, reactor)``, ``class_path`` "module:Class"."""

    def __init__(self, name, description, class_path):
        self.name = name
        self.description = description
        self.class_path = class_path

    def build(self, options, reactor):
        module_name, _, class_name = self.class_path.partition(":")
        store = getattr(import_module(module_name), class_name)
        return store.from_options(options, reactor)

    def __repr__(self):
        return "<built-in cache store %r>" % (self.name,)


memory = BuiltinStoreFactory(
    "memory", "in this process, LRU (options: max_bytes, max_object)",
    "revproxy.cache.stores.memory:MemoryStore",
)
disk = BuiltinStoreFactory(
    "disk", "files in a directory, kept across restarts, LRU "
    "(options: path, max_bytes, max_object, fsync)",
    "revproxy.cache.stores.disk:DiskStore",
)

memcached = BuiltinStoreFactory(
    "memcached", "memcached servers shared by several proxies, purges seen by all "
    "(options: servers, connections_per_server, timeout, item_max, max_object, key_prefix)",
    "revproxy.cache.stores.memcached:MemcachedStore",
)

BUILTINS = (memory, disk, memcached)

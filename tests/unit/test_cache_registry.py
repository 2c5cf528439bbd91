"""Cache stores by name: the built-ins build from options, plugins on sys.path are found,
an unknown name or a clash fails readably, and the plugin module stays light."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet.task import Clock
from twisted.plugin import IPlugin, pluginPackagePaths
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

import revproxy.plugins
from revproxy.cache.registry import UnknownStoreError, build_store, store_factories
from revproxy.cache.stores.memory import MemoryStore
from revproxy.interfaces import ICacheStore, ICacheStoreFactory
from revproxy.testing import CacheStoreContractMixin, sample_entry

PLUGIN_SOURCE = '''
from twisted.plugin import IPlugin
from zope.interface import implementer
from revproxy.interfaces import ICacheStoreFactory
from revproxy.cache.stores.memory import MemoryStore

@implementer(IPlugin, ICacheStoreFactory)
class TinyStoreFactory:
    name = %(name)r
    description = "a memory store of at most 64 KiB"
    def build(self, options, reactor):
        return MemoryStore(65536, int(options.get("max_object", 4096)), clock=reactor)

tiny = TinyStoreFactory()
'''


def install_plugin(testcase, name):
    """A plugin module offering the store factory ``name``, in a temporary
    ``revproxy/plugins`` directory put on sys.path until the test ends."""
    root = os.path.abspath(testcase.mktemp())
    directory = os.path.join(root, "revproxy", "plugins")
    os.makedirs(directory)
    with open(os.path.join(directory, "test_tiny_store.py"), "w") as f:
        f.write(PLUGIN_SOURCE % {"name": name})
    saved_sys_path = list(sys.path)
    saved_package_path = list(revproxy.plugins.__path__)
    saved_modules = set(sys.modules)
    sys.path.insert(0, root)
    revproxy.plugins.__path__.extend(
        p for p in pluginPackagePaths("revproxy.plugins") if p not in saved_package_path)

    def restore():
        sys.path[:] = saved_sys_path
        revproxy.plugins.__path__[:] = saved_package_path
        for module in set(sys.modules) - saved_modules:
            if module.startswith("revproxy.plugins."):
                del sys.modules[module]

    testcase.addCleanup(restore)


class BuiltinStoreTests(unittest.TestCase):
    def test_builtins_are_listed_and_provide_the_factory_interface(self):
        """memory and disk are known; each provides IPlugin and ICacheStoreFactory."""
        factories = store_factories()
        for name in ("memory", "disk"):
            factory = factories[name]
            self.assertTrue(verifyObject(ICacheStoreFactory, factory))
            self.assertTrue(IPlugin.providedBy(factory))
            self.assertEqual(factory.name, name)
            self.assertIsInstance(factory.description, str)

    def test_memory_store_built_with_the_reactor_as_clock(self):
        """build_store("memory", ...) gives an ICacheStore reading time from the reactor."""
        clock = Clock()
        store = build_store("memory", {"max_bytes": "1m", "max_object": "64k"}, clock)
        self.assertTrue(verifyObject(ICacheStore, store))
        store.put(b"k", sample_entry(b"k"), 10.0)
        clock.advance(10.0)
        self.assertIsNone(self.successResultOf(store.get(b"k")))

    def test_disk_store_built_from_options(self):
        """build_store("disk", {"path": ...}) gives a DiskStore in that directory."""
        path = os.path.abspath(self.mktemp())
        store = build_store("disk", [("max_bytes", "1m"), ("path", path)], Clock())
        self.assertEqual((store.name, store.path), ("disk", path))
        self.assertTrue(os.path.isdir(path))

    def test_unknown_name_lists_the_known_ones(self):
        """An unknown store name is an UnknownStoreError (KeyError and ValueError) whose
        message names the known stores."""
        error = self.assertRaises(UnknownStoreError, build_store, "redis", {}, Clock())
        self.assertIsInstance(error, KeyError)
        self.assertIsInstance(error, ValueError)
        # Installed plugins (the examples, in CI) join the list: it names every known store.
        known = ", ".join(sorted(store_factories()))
        self.assertEqual(str(error), "unknown cache store 'redis'; known: " + known)
        self.assertIn("disk, ", known)
        self.assertIn("memcached, memory", known)

    def test_bad_options_are_value_errors(self):
        """A factory's option checks surface as ValueError."""
        self.assertRaises(ValueError, build_store, "memory", {"colour": "blue"}, Clock())
        self.assertRaises(ValueError, build_store, "disk", {}, Clock())

    def test_factory_returning_a_non_store_is_a_type_error(self):
        """A plugin building something that is not an ICacheStore fails with TypeError."""
        @implementer(ICacheStoreFactory)
        class Broken:
            name = "broken"
            description = "builds a dict"

            def build(self, options, reactor):
                return {}

        self.assertRaises(TypeError, build_store, "broken", {}, Clock(),
                          factories={"broken": Broken()})

    def test_plugin_module_does_not_import_the_stores(self):
        """Importing the built-in plugin module leaves the store modules unimported."""
        code = ("import sys, revproxy.plugins.revproxy_stores as p; "
                "print(sorted(m for m in sys.modules if m.startswith('revproxy.cache')))")
        output = subprocess.check_output([sys.executable, "-c", code])
        self.assertEqual(output.strip(), b"[]")


class DiscoveryTests(unittest.TestCase):
    def test_plugin_on_sys_path_is_found_and_built(self):
        """A store plugin in a revproxy/plugins dir on sys.path joins the built-ins."""
        install_plugin(self, "tiny")
        factories = store_factories()
        self.assertEqual(sorted(n for n in factories if not n.startswith("example-")),
                         ["disk", "memcached", "memory", "tiny"])  # the examples may be installed
        store = build_store("tiny", {"max_object": 100}, Clock(), factories)
        self.assertIsInstance(store, MemoryStore)
        self.assertEqual(store.max_object, 100)

    def test_plugin_cannot_take_a_builtin_name(self):
        """A plugin claiming "memory" makes discovery fail, naming the clash."""
        install_plugin(self, "memory")
        error = self.assertRaises(ValueError, store_factories)
        self.assertIn("'memory' is already taken", str(error))


class DiscoveredStoreContractTests(CacheStoreContractMixin, unittest.TestCase):
    """The contract mixin applied to a store built through the registry by name."""

    def make_store(self, max_bytes, max_object):
        return build_store("memory", {"max_bytes": max_bytes, "max_object": max_object},
                           self.clock)

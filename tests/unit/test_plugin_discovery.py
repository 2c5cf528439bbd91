"""Policy plugins on sys.path are discovered by name; the example plugin honours the contract.

The plugin trees are copied into the test's temporary directory before being put on
``sys.path``, so the ``dropin.cache`` that ``twisted.plugin`` writes lands there, not in the
source tree.
"""

from __future__ import annotations

import os
import shutil
import sys
from random import Random

from twisted.plugin import pluginPackagePaths
from twisted.trial import unittest

import revproxy.plugins
from revproxy.balancing.registry import balancer_factories, build_balancer
from revproxy.testing import BalancerContractMixin, FakeMember, FakeRequest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", "plugins")

CLASHING_PLUGIN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer
from revproxy.interfaces import IBalancerFactory

@implementer(IPlugin, IBalancerFactory)
class Impostor:
    name = "round-robin"
    description = "tries to replace a built-in"
    def build(self, options, random):
        raise AssertionError("never built")

impostor = Impostor()
'''


def install_plugin_root(testcase, root):
    """Put ``root`` on sys.path and recompute ``revproxy.plugins.__path__`` as a fresh import
    would; the test's cleanup restores both and forgets the plugin modules imported."""
    saved_sys_path = list(sys.path)
    saved_package_path = list(revproxy.plugins.__path__)
    sys.path.insert(0, root)
    extra = [p for p in pluginPackagePaths("revproxy.plugins") if p not in saved_package_path]
    revproxy.plugins.__path__.extend(extra)

    def restore():
        sys.path[:] = saved_sys_path
        revproxy.plugins.__path__[:] = saved_package_path
        for name in [n for n in sys.modules if n.startswith("revproxy.plugins.")]:
            if name != "revproxy.plugins.revproxy_balancers":
                del sys.modules[name]

    testcase.addCleanup(restore)


def copy_examples(testcase):
    """A copy of examples/plugins in a fresh temporary directory, on sys.path."""
    root = os.path.abspath(testcase.mktemp())
    shutil.copytree(EXAMPLES, root)
    install_plugin_root(testcase, root)
    return root


class ExampleLayoutTests(unittest.TestCase):
    def test_example_tree_has_no_init_files(self):
        """examples/plugins/revproxy(/plugins) have no __init__.py: that is what lets them
        extend the installed revproxy.plugins package instead of shadowing it."""
        for parts in (("revproxy",), ("revproxy", "plugins")):
            directory = os.path.join(EXAMPLES, *parts)
            self.assertTrue(os.path.isdir(directory))
            self.assertFalse(os.path.exists(os.path.join(directory, "__init__.py")))


class DiscoveryTests(unittest.TestCase):
    def test_example_plugin_is_found_and_built(self):
        """With examples/plugins on sys.path, "random" joins the built-ins and builds."""
        self.assertNotIn("random", balancer_factories())
        copy_examples(self)
        factories = balancer_factories()
        self.assertIn("random", factories)
        self.assertIn("round-robin", factories)
        balancer = build_balancer("random", {}, Random(1), factories=factories)
        members = [FakeMember("a"), FakeMember("b")]
        self.assertIn(balancer.pick(members, FakeRequest()), members)

    def test_plugin_gone_from_sys_path_is_gone(self):
        """After the cleanup, discovery no longer offers the example."""
        copy_examples(self)
        self.assertIn("random", balancer_factories())
        self.doCleanups()
        self.assertNotIn("random", balancer_factories())

    def test_example_rejects_options(self):
        """The example's factory turns options into a readable ValueError."""
        copy_examples(self)
        error = self.assertRaises(ValueError, build_balancer, "random", {"bias": 1}, Random(1))
        self.assertIn("bias", str(error))

    def test_unknown_name_lists_plugins_too(self):
        """An unknown name's error lists built-ins and discovered plugins alike."""
        copy_examples(self)
        error = self.assertRaises(KeyError, build_balancer, "fastest", {}, Random(1))
        for name in ("random", "round-robin", "consistent-hash"):
            self.assertIn(name, str(error))

    def test_plugin_reusing_a_builtin_name_is_an_error(self):
        """A plugin named like a built-in makes discovery fail, naming the clash."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "revproxy", "plugins"))
        with open(os.path.join(root, "revproxy", "plugins", "clashing_policy.py"), "w") as f:
            f.write(CLASHING_PLUGIN)
        install_plugin_root(self, root)
        error = self.assertRaises(ValueError, balancer_factories)
        self.assertIn("'round-robin'", str(error))


class RandomPolicyContractTests(BalancerContractMixin, unittest.TestCase):
    """The example plugin, discovered and built by name, passes the IBalancer contract."""

    def setUp(self):
        copy_examples(self)

    def make_balancer(self):
        return build_balancer("random", {}, Random(1))


class HookPluginDiscoveryTests(unittest.TestCase):
    def test_example_hook_found_built_and_honours_contract(self):
        """With examples/plugins on sys.path, "header-gate" is a hook plugin; the hook it
        builds refuses requests without the header and passes the contract checks."""
        from twisted.internet import task

        from revproxy.pipeline.registry import hook_factories
        from revproxy.testing.hooks import fake_context

        copy_examples(self)
        factories = hook_factories()
        self.assertIn("header-gate", factories)
        hook = factories["header-gate"].build({"header": "x-key", "status": 401}, task.Clock())
        self.assertEqual(hook.request_head(fake_context()).status, 401)
        ctx = fake_context(b"GET / HTTP/1.1\r\nHost: a\r\nX-Key: k\r\n\r\n")
        self.assertIsNone(hook.request_head(ctx))
        self.assertRaises(ValueError, factories["header-gate"].build, {"bogus": 1}, task.Clock())

        from revproxy.testing.hooks import RequestHookContractMixin

        class Contract(RequestHookContractMixin, unittest.SynchronousTestCase):
            def make_hook(self):
                return hook

            def runTest(self):
                pass

        case = Contract()
        for name in ("test_provides_interface", "test_phases_return_none_answer_or_deferred",
                     "test_synchronous_phases_do_not_return_deferreds", "test_head_is_not_changed"):
            getattr(case, name)()

"""The built-in Python firewall rules, offered as ``IFirewallRuleFactory`` plugins.

Discovery imports this module, so it stays light: a rule's module is imported when built.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import IFirewallRuleFactory


@implementer(IPlugin, IFirewallRuleFactory)
class BuiltinFirewallRuleFactory:
    """Builds ``Class(options)``, ``class_path`` "module:Class"."""

    def __init__(self, name, description, class_path):
        self.name = name
        self.description = description
        self.class_path = class_path

    def build(self, options, reactor):
        module_name, _, class_name = self.class_path.partition(":")
        return getattr(import_module(module_name), class_name)(options)

    def __repr__(self):
        return "<built-in firewall rule %r>" % (self.name,)


deny_paths = BuiltinFirewallRuleFactory(
    "deny_paths", "deny or score requests by path (options: prefixes, regex, status, score)",
    "revproxy.firewall.rules_builtin:DenyPaths",
)
deny_header = BuiltinFirewallRuleFactory(
    "deny_header", "deny or score requests by header (options: header, values, status, score)",
    "revproxy.firewall.rules_builtin:DenyHeader",
)

BUILTINS = (deny_paths, deny_header)

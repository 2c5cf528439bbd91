"""Python firewall rules by name (``[[firewall.python]]``): the built-ins plus every
``IFirewallRuleFactory`` plugin ``twisted.plugin`` finds in ``revproxy.plugins``."""

from __future__ import annotations

from revproxy.config.errors import ConfigError
from revproxy.interfaces import IFirewallRule, IFirewallRuleFactory
from revproxy.plugin_registry import build_named, find_factories


def firewall_rule_factories() -> dict:
    """Every firewall rule factory by name (ValueError on a name clash)."""
    from revproxy.plugins.revproxy_firewall import BUILTINS

    return find_factories(IFirewallRuleFactory, BUILTINS, "firewall rule")


def build_python_rules(settings, source, reactor, factories=None):
    """``(before, after)``: the rules of ``settings.python`` built in order. ConfigError
    naming the entry for an unknown plugin, bad options, or a product that is not an
    ``IFirewallRule``."""
    if not settings.python:
        return (), ()
    if factories is None:
        factories = firewall_rule_factories()
    before, after = [], []
    for index, entry in enumerate(settings.python):
        where = "[[firewall.python]] #%d" % (index + 1)
        try:
            rule = build_named(factories, entry.plugin, entry.options, reactor, IFirewallRule,
                               "firewall rule")
        except (KeyError, ValueError) as e:
            raise ConfigError(source, where + " plugin", entry.plugin,
                              str(e).strip("'\"")) from None
        except TypeError as e:
            raise ConfigError(source, where + " plugin", entry.plugin, str(e)) from None
        (before if entry.order == "before" else after).append(rule)
    names = [rule.name for rule in before + after]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(source, "[[firewall.python]]", name,
                              "two rules have this name; give one options.name = \"...\"")
    return tuple(before), tuple(after)

"""Balancing policies by name: the built-ins plus every ``IBalancerFactory`` plugin."""

from __future__ import annotations

from revproxy.interfaces import IBalancer, IBalancerFactory
from revproxy.plugin_registry import UnknownPluginError, build_named, find_factories


class UnknownBalancerError(UnknownPluginError):
    """No policy has the name asked for; the message lists the known ones."""


def balancer_factories() -> dict:
    """Every policy factory by name: the built-ins, then the plugins that
    ``twisted.plugin.getPlugins`` finds in ``revproxy.plugins`` (ValueError on a name clash)."""
    from revproxy.plugins.revproxy_balancers import BUILTINS

    return find_factories(IBalancerFactory, BUILTINS, "balancer")


def build_balancer(name, options, random, factories=None):
    """A new ``IBalancer`` from the factory called ``name``, given ``options`` (a dict, or
    the pool's sorted ``balance_options`` pairs) and a ``random.Random``.

    Raises UnknownBalancerError (a KeyError and a ValueError) listing the known names for
    an unknown one, the factory's ValueError for bad options, and TypeError when a plugin
    returns something that does not provide ``IBalancer``. ``factories`` defaults to
    ``balancer_factories()``; pass it to avoid re-running discovery for every pool.
    """
    if factories is None:
        factories = balancer_factories()
    return build_named(factories, name, options, random, IBalancer, "balance policy",
                       UnknownBalancerError)

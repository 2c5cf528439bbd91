"""Balancing policies by name: the built-ins plus every ``IBalancerFactory`` plugin."""

from __future__ import annotations

from twisted.plugin import getPlugins

from revproxy.interfaces import IBalancer, IBalancerFactory


class UnknownBalancerError(KeyError, ValueError):
    """No policy has the name asked for; the message lists the known ones."""

    def __str__(self):
        # KeyError would print the repr of the message, quotes and all.
        return str(self.args[0]) if self.args else ""


def balancer_factories() -> dict:
    """Every policy factory by name: the built-ins, then the plugins that
    ``twisted.plugin.getPlugins`` finds in ``revproxy.plugins``.

    Raises ValueError when two factories claim one name (a plugin cannot replace a
    built-in: a config would silently change meaning with what happens to be installed).
    """
    import revproxy.plugins
    from revproxy.plugins.revproxy_balancers import BUILTINS

    factories = {factory.name: factory for factory in BUILTINS}
    builtin_ids = {id(factory) for factory in BUILTINS}
    for plugin in getPlugins(IBalancerFactory, revproxy.plugins):
        if id(plugin) in builtin_ids:
            continue
        taken = factories.get(plugin.name)
        if taken is not None:
            raise ValueError(
                "balancer plugin %r: the name %r is already taken by %r"
                % (plugin, plugin.name, taken)
            )
        factories[plugin.name] = plugin
    return factories


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
    factory = factories.get(name)
    if factory is None:
        raise UnknownBalancerError(
            "unknown balance policy %r; known: %s" % (name, ", ".join(sorted(factories)))
        )
    balancer = factory.build(dict(options or ()), random)
    if not IBalancer.providedBy(balancer):
        raise TypeError(
            "balance policy %r built %r, which does not provide IBalancer" % (name, balancer)
        )
    return balancer

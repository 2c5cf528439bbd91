"""Plugins by name, for every plugin point: the built-ins plus what ``twisted.plugin`` finds.

Each plugin point (balancing policies, cache stores, ...) has a factory interface with a
``name``; the config names a factory; an unknown name fails at start-up listing the known
ones. A plugin cannot take a built-in's (or another plugin's) name: a config would silently
change meaning with whatever happens to be installed.
"""

from __future__ import annotations

from twisted.plugin import getPlugins


class UnknownPluginError(KeyError, ValueError):
    """No factory has the name asked for; the message lists the known ones."""

    def __str__(self):
        # KeyError would print the repr of the message, quotes and all.
        return str(self.args[0]) if self.args else ""


def find_factories(factory_interface, builtins, what: str) -> dict:
    """Every factory by name: ``builtins`` first, then the plugins providing
    ``factory_interface`` found in ``revproxy.plugins``. ``what`` names the kind in errors."""
    import revproxy.plugins

    factories = {factory.name: factory for factory in builtins}
    builtin_ids = {id(factory) for factory in builtins}
    for plugin in getPlugins(factory_interface, revproxy.plugins):
        if id(plugin) in builtin_ids:
            continue
        taken = factories.get(plugin.name)
        if taken is not None:
            raise ValueError("%s plugin %r: the name %r is already taken by %r"
                             % (what, plugin, plugin.name, taken))
        factories[plugin.name] = plugin
    return factories


def build_named(factories, name, options, build_arg, product_interface, what: str,
                error=UnknownPluginError):
    """``factories[name].build(options, build_arg)``, checked to provide
    ``product_interface``. Raises ``error`` (a KeyError and ValueError) listing the known
    names for an unknown one, the factory's ValueError for bad options, TypeError when a
    plugin builds something that does not provide the interface."""
    factory = factories.get(name)
    if factory is None:
        raise error("unknown %s %r; known: %s" % (what, name, ", ".join(sorted(factories))))
    product = factory.build(dict(options or ()), build_arg)
    if not product_interface.providedBy(product):
        raise TypeError("%s %r built %r, which does not provide %s"
                        % (what, name, product, product_interface.__name__))
    return product

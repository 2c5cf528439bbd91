"""Cache stores by name: the built-ins plus every ``ICacheStoreFactory`` plugin."""

from __future__ import annotations

from twisted.plugin import getPlugins

from revproxy.interfaces import ICacheStore, ICacheStoreFactory


class UnknownStoreError(KeyError, ValueError):
    """No store has the name asked for; the message lists the known ones."""

    def __str__(self):
        # KeyError would print the repr of the message, quotes and all.
        return str(self.args[0]) if self.args else ""


def store_factories() -> dict:
    """Every store factory by name: the built-ins, then the plugins that
    ``twisted.plugin.getPlugins`` finds in ``revproxy.plugins``.

    Raises ValueError when two factories claim one name (a plugin cannot replace a
    built-in: a config would silently change meaning with what happens to be installed).
    """
    import revproxy.plugins
    from revproxy.plugins.revproxy_stores import BUILTINS

    factories = {factory.name: factory for factory in BUILTINS}
    builtin_ids = {id(factory) for factory in BUILTINS}
    for plugin in getPlugins(ICacheStoreFactory, revproxy.plugins):
        if id(plugin) in builtin_ids:
            continue
        taken = factories.get(plugin.name)
        if taken is not None:
            raise ValueError(
                "cache store plugin %r: the name %r is already taken by %r"
                % (plugin, plugin.name, taken)
            )
        factories[plugin.name] = plugin
    return factories


def build_store(name, options, reactor, factories=None):
    """A new ``ICacheStore`` from the factory called ``name``, given ``options`` (a dict,
    or sorted pairs) and the reactor (its ``seconds()`` is the store's clock).

    Raises UnknownStoreError (a KeyError and a ValueError) listing the known names for an
    unknown one, the factory's ValueError for bad options, and TypeError when a plugin
    returns something that does not provide ``ICacheStore``. ``factories`` defaults to
    ``store_factories()``; pass it to avoid re-running discovery for every cache.
    """
    if factories is None:
        factories = store_factories()
    factory = factories.get(name)
    if factory is None:
        raise UnknownStoreError(
            "unknown cache store %r; known: %s" % (name, ", ".join(sorted(factories)))
        )
    store = factory.build(dict(options or ()), reactor)
    if not ICacheStore.providedBy(store):
        raise TypeError(
            "cache store %r built %r, which does not provide ICacheStore" % (name, store)
        )
    return store

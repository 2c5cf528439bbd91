"""Cache stores by name: the built-ins plus every ``ICacheStoreFactory`` plugin."""

from __future__ import annotations

from revproxy.interfaces import ICacheStore, ICacheStoreFactory
from revproxy.plugin_registry import UnknownPluginError, build_named, find_factories


class UnknownStoreError(UnknownPluginError):
    """No store has the name asked for; the message lists the known ones."""


def store_factories() -> dict:
    """Every store factory by name: the built-ins, then the plugins that
    ``twisted.plugin.getPlugins`` finds in ``revproxy.plugins`` (ValueError on a name clash)."""
    from revproxy.plugins.revproxy_stores import BUILTINS

    return find_factories(ICacheStoreFactory, BUILTINS, "cache store")


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
    return build_named(factories, name, options, reactor, ICacheStore, "cache store",
                       UnknownStoreError)

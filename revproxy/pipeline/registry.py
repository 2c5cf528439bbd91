"""Pipeline hooks by name: the built-ins plus every ``IRequestHookFactory`` plugin."""

from __future__ import annotations

from revproxy.interfaces import IRequestHook, IRequestHookFactory
from revproxy.pipeline.hooks import HookSet
from revproxy.plugin_registry import build_named, find_factories


def hook_factories() -> dict:
    """Every hook factory by name: the built-ins, then the plugins ``twisted.plugin`` finds in
    ``revproxy.plugins`` (ValueError on a name clash)."""
    from revproxy.plugins.revproxy_hooks import BUILTINS

    return find_factories(IRequestHookFactory, BUILTINS, "hook")


def build_hooks(config, reactor, factories=None) -> HookSet:
    """The ``HookSet`` of ``config.hooks``, built in order. Raises ValueError naming the
    entry for an unknown plugin or bad options (the factory's message), TypeError when a
    plugin builds something that does not provide ``IRequestHook``."""
    if not config.hooks:
        return HookSet()
    if factories is None:
        factories = hook_factories()
    hooks = []
    for index, entry in enumerate(config.hooks):
        try:
            hooks.append(build_named(factories, entry.plugin, entry.options, reactor,
                                     IRequestHook, "hook"))
        except (KeyError, ValueError) as e:
            raise ValueError("%s: [[hooks]] #%d (plugin %r): %s"
                             % (config.source, index + 1, entry.plugin, e)) from None
    return HookSet(hooks)

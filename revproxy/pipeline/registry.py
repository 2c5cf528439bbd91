"""Pipeline hooks by name: the built-ins plus every ``IRequestHookFactory`` plugin."""

from __future__ import annotations

from revproxy.interfaces import IRequestHook, IRequestHookFactory
from revproxy.pipeline.hooks import HookSet
from revproxy.plugin_registry import build_named, find_factories


class HookBuildError(ValueError):
    """Entry ``index`` (0-based) of ``[[hooks]]`` could not be built; ``message`` says why."""

    def __init__(self, index, plugin, message):
        super().__init__("[[hooks]] #%d (plugin %r): %s" % (index + 1, plugin, message))
        self.index = index
        self.plugin = plugin
        self.message = message


def hook_factories() -> dict:
    """Every hook factory by name: the built-ins, then the plugins ``twisted.plugin`` finds in
    ``revproxy.plugins`` (ValueError on a name clash)."""
    from revproxy.plugins.revproxy_hooks import BUILTINS

    return find_factories(IRequestHookFactory, BUILTINS, "hook")


def build_hooks(config, reactor, factories=None) -> HookSet:
    """The ``HookSet`` of ``config.hooks``, built in order. Raises ``HookBuildError`` naming
    the entry for an unknown plugin or bad options (the factory's message), TypeError when a
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
            raise HookBuildError(index, entry.plugin, str(e).strip("'\"")) from None
    return HookSet(hooks)

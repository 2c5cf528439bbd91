"""Plugin package for revproxy: modules in any ``revproxy/plugins/`` directory on
``sys.path`` (without an ``__init__.py``) are searched by ``twisted.plugin.getPlugins``."""

from __future__ import annotations

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # noqa: F821 - set by the import system
__all__ = []

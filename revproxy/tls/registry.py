"""TLS providers by name: the built-in "pem" plus every ``ITLSProviderFactory`` plugin."""

from __future__ import annotations

from revproxy.interfaces import ITLSProviderFactory
from revproxy.plugin_registry import find_factories


def provider_factories() -> dict:
    from revproxy.plugins.revproxy_tls import BUILTINS

    return find_factories(ITLSProviderFactory, BUILTINS, "TLS provider")

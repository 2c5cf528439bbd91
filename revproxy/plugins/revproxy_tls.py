"""The built-in TLS provider, offered as an ``ITLSProviderFactory`` plugin: "pem".

Discovery imports this module, so it stays light.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import ITLSProviderFactory


@implementer(IPlugin, ITLSProviderFactory)
class PemProviderFactory:
    name = "pem"
    description = "certificates and keys from PEM files ([tls] certificates, certificate_dir)"

    def build(self, options, context_options):
        from revproxy.tls.provider import pem_provider_from_options

        return pem_provider_from_options(options, context_options)

    def __repr__(self):
        return "<built-in TLS provider 'pem'>"


pem = PemProviderFactory()
BUILTINS = (pem,)

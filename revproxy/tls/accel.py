"""``[tls] openssl_provider``: check at start-up that an OpenSSL 3 provider is set to load.

The crypto of pyOpenSSL runs in the OpenSSL that ``cryptography`` ships (statically linked
into its wheel), which reads ``OPENSSL_CONF`` when it starts: a provider (an accelerator
card's, or the default one tuned) is activated there, and ``OPENSSL_MODULES`` says where its
module file is. The bindings expose no ``OSSL_PROVIDER_load`` nor ``OSSL_PROVIDER_available``,
so revproxy cannot load the provider itself nor ask OpenSSL which ones are active. What it
checks, honestly and without a traceback: ``OPENSSL_CONF`` is set, readable, and activates a
provider section with that name (``name = section`` under the providers list, and
``activate = 1`` in the section); the module file exists when ``module =`` names one. A wrong
setting fails start-up naming the file and what is missing. See docs/tls.md (acceleration).
"""

from __future__ import annotations

import configparser
import os


def check_openssl_provider(name: str, environ=None) -> str:
    """"" when ``name`` is "" or set to load; else one line saying what is wrong."""
    if not name:
        return ""
    environ = os.environ if environ is None else environ
    path = environ.get("OPENSSL_CONF", "")
    if not path:
        return ("OPENSSL_CONF is not set; point it at an openssl.cnf that activates the "
                "provider %r (docs/tls.md)" % name)
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       inline_comment_prefixes=("#",))
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_string("[__top__]\n" + handle.read())
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        return "%s: cannot read OPENSSL_CONF: %s" % (path, getattr(e, "strerror", None) or e)
    section = _provider_section(parser, name)
    if section is None:
        return ("%s: no provider %r in the providers section (expected %s = %s_sect under the "
                "section named by openssl_conf's providers key)" % (path, name, name, name))
    values = parser[section]
    if values.get("activate", "").strip().lower() not in ("1", "yes", "true", "on"):
        return "%s: [%s] does not activate the provider %r (expected activate = 1)" % (
            path, section, name)
    module = values.get("module", "").strip()
    if module:
        where = module if os.path.isabs(module) else os.path.join(
            environ.get("OPENSSL_MODULES", ""), module)
        if not os.path.exists(where):
            return "%s: [%s] module %s: no such file (OPENSSL_MODULES=%s)" % (
                path, section, where, environ.get("OPENSSL_MODULES", ""))
    return ""


def _provider_section(parser, name):
    top = parser["__top__"] if parser.has_section("__top__") else {}
    init = top.get("openssl_conf", "").strip()
    if not init or not parser.has_section(init):
        return None
    providers = parser[init].get("providers", "").strip()
    if not providers or not parser.has_section(providers):
        return None
    section = parser[providers].get(name, "").strip()
    return section if section and parser.has_section(section) else None

"""The built-in ``ITLSProvider``: certificates read from PEM files, chosen by SNI.

Certificates are grouped by name: for each name, the first RSA and the first ECDSA
certificate claiming it (exactly or by wildcard) share one context, and OpenSSL serves each
client the one it supports. The default certificate (``[tls] default_certificate``, else the
first one configured) answers clients that send no SNI or an unknown name.
"""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import ITLSProvider
from revproxy.tls.contexts import TLSOptions, build_certificate_context
from revproxy.tls.sni import SNIMap


@implementer(ITLSProvider)
class PemTLSProvider:
    """Contexts for validated ``CertificateBundle`` objects (``revproxy.tls.pem``).

    ``bundles`` in configuration order; ``default`` the bundle for unknown names (None: the
    first)."""

    def __init__(self, bundles, options: TLSOptions, default=None):
        if not bundles:
            raise ValueError("no certificate to serve")
        self.bundles = list(bundles)
        self.options = options
        by_name = {}  # name -> {"RSA": bundle, "ECDSA": bundle}
        for bundle in self.bundles:
            for name in bundle.names:
                by_name.setdefault(name, {}).setdefault(bundle.key_type, bundle)
        contexts = {}  # (ids of the bundles) -> context

        def context_of(group):
            members = tuple(b for b in (group.get("RSA"), group.get("ECDSA")) if b is not None)
            key = tuple(id(b) for b in members)
            if key not in contexts:
                contexts[key] = build_certificate_context(members, options)
            return contexts[key]

        default = default or self.bundles[0]
        default_group = {default.key_type: default}
        for name in default.names:  # its RSA/ECDSA twin, when one serves the same first name
            default_group = dict(by_name.get(name, default_group))
            default_group[default.key_type] = default
            break
        self._map = SNIMap(context_of(default_group))
        for name, group in by_name.items():
            self._map.add(name, context_of(group))
        self.contexts = list(contexts.values())

    def server_context(self, server_name):
        return self._map.lookup(server_name)

    def client_policy(self, pool):
        """The pool's own ``tls_*`` keys (``revproxy.upstream.tls.client_policy``): None for
        a pool without https:// members."""
        from revproxy.upstream.tls import client_policy

        return client_policy(pool)

    def names(self):
        return self._map.names()


CERT_SUFFIXES = (".pem", ".crt")


def directory_entries(path):
    """``(cert, key, ocsp)`` paths for each certificate file in directory ``path``, sorted by
    name: ``NAME.pem`` or ``NAME.crt`` holding a certificate, its key inside it or in
    ``NAME.key``, ``NAME.ocsp`` stapled when present. Files holding no certificate (a key
    saved as .pem) are skipped. Raises ``CertificateProblem`` when the directory is unreadable."""
    import os

    from revproxy.tls.pem import CertificateProblem

    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise CertificateProblem(path, "cannot read the certificate directory: %s"
                                 % (e.strerror or e)) from None
    entries = []
    for name in names:
        stem, suffix = os.path.splitext(name)
        full = os.path.join(path, name)
        if suffix not in CERT_SUFFIXES or not os.path.isfile(full):
            continue
        try:
            with open(full, "rb") as handle:
                if b"-----BEGIN CERTIFICATE-----" not in handle.read():
                    continue
        except OSError:
            pass  # load_bundle names the file and the reason
        key = os.path.join(path, stem + ".key")
        ocsp = os.path.join(path, stem + ".ocsp")
        entries.append((full, key if os.path.exists(key) else "",
                        ocsp if os.path.exists(ocsp) else ""))
    return entries


def load_bundles(options, now=None):
    """Every bundle the "pem" options name (``certificates``: ``CertificateEntry`` objects,
    ``certificate_dir``) and the default one: ``(bundles, default, problems)`` with
    ``problems`` a list of ``CertificateProblem`` (every bad file, not only the first)."""
    from revproxy.tls.pem import CertificateProblem, load_bundle

    jobs = [(e.cert, e.key, e.passphrase_file, e.ocsp_response)
            for e in options.get("certificates", ())]
    problems = []
    if options.get("certificate_dir"):
        try:
            jobs += [(c, k, "", o) for c, k, o in directory_entries(options["certificate_dir"])]
        except CertificateProblem as e:
            problems.append(e)
    bundles = []
    for cert, key, passphrase_file, ocsp in jobs:
        try:
            bundles.append(load_bundle(cert, key, passphrase_file, ocsp, now))
        except CertificateProblem as e:
            problems.append(e)
    default = None
    wanted = options.get("default_certificate", "")
    if wanted:
        found = [b for b in bundles if b.cert_path == wanted]
        if found:
            default = found[0]
        elif not problems:
            problems.append(CertificateProblem(wanted, "default_certificate names no "
                                                       "certificate of [tls] certificates "
                                                       "or certificate_dir"))
    return bundles, default, problems


def pem_provider_from_options(options, context_options):
    """The "pem" provider for ``options`` (see ``load_bundles``). Raises the first
    ``CertificateProblem`` (a ValueError), with the others in its ``others`` attribute."""
    bundles, default, problems = load_bundles(options)
    if problems:
        first = problems[0]
        first.others = problems[1:]
        raise first
    if not bundles:
        raise ValueError("no certificate: set [tls] certificates or certificate_dir")
    return PemTLSProvider(bundles, context_options, default)

"""The TLS part of a runtime: one ``ListenerTLS`` per ``ssl:``/``tls:`` listener, built from
one config snapshot (at start-up, by ``--check`` and on every reload).

Certificates are read again on every build, so SIGHUP picks up renewed files; a problem with
any of them refuses the whole build (``CertificateErrors``, each problem naming its file), so a
broken new certificate leaves the running one in place and the log says why.
"""

from __future__ import annotations

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.tls.contexts import TLSOptions, build_dispatch_context
from revproxy.tls.endpoints import is_tls_description, parse_tls_listener
from revproxy.tls.ticketkeys import period_of


class CertificateErrors(ConfigError):
    """Certificates or keys that cannot be served; ``problems`` lists one line per file."""

    def __init__(self, source, problems):
        self.problems = [str(p) for p in problems]
        more = " (and %d more)" % (len(self.problems) - 1) if len(self.problems) > 1 else ""
        super().__init__(source, "", NO_VALUE, self.problems[0] + more)


class ListenerTLS:
    """What one TLS listener serves: ``provider`` (an ``ITLSProvider``) and its dispatch
    context, rebuilt (new session ticket keys, empty session cache) every ``lifetime``
    seconds: lazily, at the first accept after that.

    With ``ticket_keys`` (``revproxy.tls.ticketkeys.TicketKeys``) the keys are derived for
    ``label`` and the rotation period, so every process with the same secret serves the same
    keys and rotates at the same instants (period boundaries); without, OpenSSL draws random
    keys for each context, rebuilt ``lifetime`` after the previous one."""

    def __init__(self, provider, options, client_auth, lifetime, now, ticket_keys=None,
                 label=""):
        self.provider = provider
        self.options = options
        self.client_auth = client_auth
        self.lifetime = lifetime
        self.ticket_keys = ticket_keys
        self.label = label
        self._dispatch = None
        self.built_at = None
        self.period = None
        self.rotations = 0
        self.dispatch_context(now)

    def _due(self, now):
        if self._dispatch is None:
            return True
        if self.ticket_keys is not None:
            return period_of(now, self.lifetime) != self.period
        return bool(self.lifetime) and now - self.built_at >= self.lifetime

    def dispatch_context(self, now):
        if self._due(now):
            if self._dispatch is not None:
                self.rotations += 1
            context = build_dispatch_context(self.options, self.client_auth,
                                             self.provider.server_context)
            if self.ticket_keys is not None:
                self.period = period_of(now, self.lifetime)
                self.ticket_keys.apply(context, self.label, self.period)
            self._dispatch = context
            self.built_at = now
        return self._dispatch


class TLSRuntime:
    """``listener(description)`` -> its ``ListenerTLS``; ``provider`` serves ``tls:`` ones."""

    def __init__(self, listeners, provider=None):
        self._listeners = listeners
        self.provider = provider

    def listener(self, description):
        return self._listeners[description]

    def __contains__(self, description):
        return description in self._listeners


def context_options(config, alpn):
    tls = config.tls
    return TLSOptions(min_version=tls.min_version, ciphers=tls.ciphers,
                      tls13_suites=tls.tls13_ciphersuites, groups=tls.groups,
                      session_tickets=tls.session_tickets, session_timeout=tls.session_timeout,
                      alpn=alpn, client_ca=tls.client_ca)


def _check_options(config, options):
    """Refuse a cipher list, suite list or group list OpenSSL does not take, naming the key."""
    from OpenSSL import SSL

    from revproxy.tls.defaults import apply_defaults

    try:
        apply_defaults(SSL.Context(SSL.TLS_METHOD), options.min_version, options.ciphers,
                       options.tls13_suites, options.groups)
    except ValueError as e:
        key = "tls13_ciphersuites" if "1.3" in str(e) else (
            "groups" if "groups" in str(e) else "ciphers")
        raise ConfigError(config.source, "[tls] %s" % key, NO_VALUE, str(e)) from None


def _client_ca(config):
    from revproxy.tls.pem import _read

    path = config.tls.client_ca
    if not path:
        return
    from cryptography import x509

    try:
        data = _read(path, "client CA bundle")
    except ValueError as e:  # CertificateProblem: cannot read it
        raise CertificateErrors(config.source, [e]) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = None
    if not certs:
        raise CertificateErrors(config.source, ["%s: no PEM certificate in the client CA "
                                                "bundle ([tls] client_ca)" % path])


def _tls_provider(config, options, factories):
    from revproxy.plugin_registry import build_named
    from revproxy.interfaces import ITLSProvider

    tls = config.tls
    if tls.provider == "pem":
        provider_options = {"certificates": tls.certificates,
                            "certificate_dir": tls.certificate_dir,
                            "default_certificate": tls.default_certificate}
    else:
        provider_options = dict(tls.provider_options)
    try:
        return build_named(factories, tls.provider, provider_options, options, ITLSProvider,
                           "TLS provider")
    except ValueError as e:
        problems = [e] + list(getattr(e, "others", ()))
        if isinstance(e, KeyError) or not hasattr(e, "path"):
            raise ConfigError(config.source, "[tls] provider", tls.provider,
                              str(e).strip("'\"")) from None
        raise CertificateErrors(config.source, problems) from None
    except TypeError as e:
        raise ConfigError(config.source, "[tls] provider", tls.provider, str(e)) from None


def _ssl_provider(config, description, spec, options):
    """The provider of an ``ssl:`` listener: its one certificate (and extraCertChain)."""
    from cryptography import x509

    from revproxy.tls.pem import CertificateProblem, _check_chain, _read, load_bundle
    from revproxy.tls.provider import PemTLSProvider

    try:
        bundle = load_bundle(spec.cert, spec.private_key)
        if spec.extra_chain:
            try:
                extra = x509.load_pem_x509_certificates(_read(spec.extra_chain,
                                                              "extraCertChain file"))
            except ValueError:
                raise CertificateProblem(spec.extra_chain, "no PEM certificate in the "
                                                           "extraCertChain file") from None
            bundle.chain += extra
            _check_chain(spec.extra_chain, [bundle.cert] + bundle.chain)
    except CertificateProblem as e:
        raise CertificateErrors(config.source, [e]) from None
    return PemTLSProvider([bundle], options)


def tls_descriptions(config):
    return [d for d in config.server.listen if is_tls_description(d)]


def admin_tls_descriptions(config):
    """The admin listeners served over our TLS (``ssl:`` with their own certificate)."""
    return [d for d in config.admin.listen if is_tls_description(d)]


def _admin_tls(config, options, now, ticket_keys=None):
    """``description -> ListenerTLS`` of the TLS admin listeners: HTTP/1.1 only in ALPN (the
    admin site speaks nothing else), the listener's ``client_auth`` (default "off") with
    ``[tls] client_ca``: ``client_auth=required`` makes a client certificate the admin
    credential, alone or with the bearer token."""
    tls = config.tls
    admin_options = TLSOptions(min_version=options.min_version, ciphers=options.ciphers,
                               tls13_suites=options.tls13_suites, groups=options.groups,
                               session_tickets=options.session_tickets,
                               session_timeout=options.session_timeout, alpn=("http/1.1",),
                               client_ca=options.client_ca)
    listeners = {}
    for description in admin_tls_descriptions(config):
        try:
            spec = parse_tls_listener(description)
        except ValueError as e:
            raise ConfigError(config.source, "[admin] listen", description, str(e)) from None
        if spec.kind != "ssl":
            raise ConfigError(config.source, "[admin] listen", description,
                              "an admin listener over TLS is ssl:PORT:privateKey=KEY:certKey="
                              "CERT (its own certificate), not tls:")
        client_auth = spec.client_auth or "off"
        if client_auth != "off" and not tls.client_ca:
            raise ConfigError(config.source, "[admin] listen", description,
                              "client_auth=%s needs [tls] client_ca (a CA bundle)" % client_auth)
        provider = _ssl_provider(config, description, spec, admin_options)
        listeners[description] = ListenerTLS(provider, admin_options, client_auth,
                                             tls.ticket_key_lifetime, now, ticket_keys,
                                             description)
    return listeners


def build_tls(config, alpn, now, factories=None, ticket_keys=None):
    """The ``TLSRuntime`` of ``config``'s TLS listeners, ALPN list ``alpn`` (str), the clock
    at ``now``, session ticket keys from ``ticket_keys`` (``TicketKeys``; None: OpenSSL's
    random keys). Raises ``ConfigError`` (``CertificateErrors`` for files)."""
    from revproxy.tls.accel import check_openssl_provider

    tls = config.tls
    problem = check_openssl_provider(tls.openssl_provider)
    if problem:
        raise ConfigError(config.source, "[tls] openssl_provider", tls.openssl_provider,
                          problem)
    options = context_options(config, alpn)
    descriptions = tls_descriptions(config)
    specs = {}
    for description in descriptions:
        try:
            specs[description] = parse_tls_listener(description)
        except ValueError as e:
            raise ConfigError(config.source, "[server] listen", description, str(e)) from None
    wants_provider = any(s.kind == "tls" for s in specs.values()) or tls.certificates or \
        tls.certificate_dir
    if not specs and not wants_provider:
        return TLSRuntime(_admin_tls(config, options, now, ticket_keys))
    for description, spec in specs.items():
        if spec.kind == "tls" and tls.provider == "pem" and not (
                tls.certificates or tls.certificate_dir):
            raise ConfigError(config.source, "[server] listen", description,
                              "a tls: listener serves the [tls] certificates: set [tls] "
                              "certificates or certificate_dir (or use ssl:PORT:privateKey=...)")
    _check_options(config, options)
    _client_ca(config)
    provider = None
    if wants_provider:
        if factories is None:
            from revproxy.tls.registry import provider_factories

            factories = provider_factories()
        provider = _tls_provider(config, options, factories)
    listeners = {}
    for description, spec in specs.items():
        client_auth = spec.client_auth or tls.client_auth
        if client_auth != "off" and not tls.client_ca:
            raise ConfigError(config.source, "[server] listen", description,
                              "client_auth=%s needs [tls] client_ca (a CA bundle)" % client_auth)
        chosen = provider if spec.kind == "tls" else _ssl_provider(config, description, spec,
                                                                  options)
        listeners[description] = ListenerTLS(chosen, options, client_auth,
                                             tls.ticket_key_lifetime, now, ticket_keys,
                                             description)
    listeners.update(_admin_tls(config, options, now, ticket_keys))
    return TLSRuntime(listeners, provider)

"""The TLS parts of composing a runtime, for ``revproxy.tap`` (the composition root): the
listeners' contexts with this process's ticket keys, the ALPN list, the ``--check`` of
certificates, and the client TLS policy of pools with ``https://`` members."""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.config.errors import ConfigError

log = Logger(namespace="revproxy")


def http2_enabled(config) -> bool:
    """Whether HTTP/2 is offered to clients (``[http2] enabled``, where that section exists)."""
    return bool(getattr(getattr(config, "http2", None), "enabled", False))


def alpn_protocols(config):
    """The ALPN protocols TLS listeners advertise: ``[tls] alpn``, else h2 and http/1.1 when
    HTTP/2 is on, else http/1.1 alone."""
    if config.tls.alpn:
        return config.tls.alpn
    return ("h2", "http/1.1") if http2_enabled(config) else ("http/1.1",)


def server_tls(config, shared):
    """The contexts of the TLS listeners (``revproxy.tls.runtime``); certificates are read
    again on every call, so a reload serves renewed files. Raises ConfigError."""
    from revproxy.tls.defaults import FALLBACK_GROUP, groups_settable
    from revproxy.tls.runtime import build_tls

    tls = build_tls(config, alpn_protocols(config), shared.reactor.seconds(),
                    ticket_keys=ticket_keys(config, shared))
    for description in config.server.listen:
        if description in tls:
            provider = tls.listener(description).provider
            names = provider.names() if hasattr(provider, "names") else []
            log.info("TLS {desc}: certificates for {names}", desc=description,
                     names=", ".join(names) or "(provider %r)" % config.tls.provider)
    if tls.provider is not None or any(d in tls for d in config.server.listen):
        if not groups_settable():
            log.warn("TLS: these OpenSSL bindings cannot set a group list: key exchange "
                     "limited to {group} (docs/tls.md)", group=FALLBACK_GROUP)
    return tls


def ticket_keys(config, shared):
    """The process's ``TicketKeys`` (resolved at the first build with a TLS listener), or None
    where the bindings cannot set keys: then each context has OpenSSL's random keys, and a
    worker's sessions resume on that worker only (said once in the log)."""
    from revproxy.tls.runtime import admin_tls_descriptions, tls_descriptions
    from revproxy.tls.ticketkeys import shared_keys

    if shared.ticket_keys is False and (tls_descriptions(config) or
                                        admin_tls_descriptions(config)):
        shared.ticket_keys, why = shared_keys(shared.ticket_secret)
        if shared.ticket_keys is None and shared.ticket_from_supervisor:
            log.warn("TLS: session ticket keys cannot be shared with the other workers ({why}): "
                     "a session resumes only on the worker that issued it", why=why)
        elif shared.ticket_keys is None:
            log.info("TLS: session ticket keys are OpenSSL's own ({why})", why=why)
    return shared.ticket_keys or None


def check_tls(config):
    """Validate what TLS start-up needs (certificate and key files, [tls] settings) without
    running anything: raises ConfigError (``CertificateErrors`` lists each bad file)."""
    import time

    from revproxy.tls.runtime import build_tls

    build_tls(config, alpn_protocols(config), time.time())


def client_tls(config, pool, provider=None):
    """The TLS policy of a pool with https:// members (None without): the ``[tls]``
    provider's ``client_policy(pool)`` when it gives one, else the pool's own ``tls_*`` keys
    (files read now; a problem is a ConfigError naming the pool's key). Verification turned
    off is a warning in the log, every time the pool is built."""
    from revproxy.config.reader import table_key
    from revproxy.upstream.tls import TLSSetupError, client_policy, policy_summary

    try:
        tls = provider.client_policy(pool) if provider is not None else None
        if tls is None:
            tls = client_policy(pool)
    except TLSSetupError as e:
        raise ConfigError(config.source, "[pools.%s] %s" % (table_key(pool.name), e.key),
                          e.value, e.message)
    if tls is not None:
        if tls.verify:
            log.info("pool {pool}: TLS to members ({how})", pool=pool.name,
                     how=", ".join(policy_summary(tls)))
        else:
            log.warn("pool {pool}: TLS certificate verification is OFF (tls_verify = false): "
                     "members are not authenticated", pool=pool.name)
    return tls


def check_upstream_tls(config):
    """``--check`` and start-up: every pool's TLS files load (ConfigError otherwise)."""
    for pool in config.pools:
        client_tls(config, pool)

"""``ssl:`` and ``tls:`` listener descriptions, parsed by revproxy rather than Twisted.

Twisted's ``ssl:`` endpoint would build its own context (its defaults, no ALPN, no SNI): we
take its options, listen on the plain ``tcp:`` endpoint and wrap the factory in our TLS.

- ``ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:extraCertChain=CHAIN.pem]`` serves that
  one certificate (Twisted's syntax, the quick start); ``certKey`` defaults to ``privateKey``;
- ``tls:PORT`` serves the ``[tls]`` certificates with SNI;
- both take ``interface=``, ``backlog=`` (passed to tcp:) and ``client_auth=off|optional|
  required`` (this listener's client-certificate mode, default ``[tls] client_auth``).
Any other option is refused with its name, never silently ignored.
"""

from __future__ import annotations

from revproxy.config.values import split_description

TCP_OPTIONS = ("interface", "backlog", "port")
SSL_OPTIONS = ("privateKey", "certKey", "extraCertChain")
OUR_OPTIONS = ("client_auth",)


class TLSListenerSpec:
    """A parsed TLS listener: ``kind`` ("ssl" or "tls"), ``tcp`` (the endpoint to listen on),
    ``private_key``/``cert``/``extra_chain`` (ssl: only), ``client_auth`` (None: [tls]'s)."""

    def __init__(self, kind, tcp, private_key="", cert="", extra_chain="", client_auth=None):
        self.kind = kind
        self.tcp = tcp
        self.private_key = private_key
        self.cert = cert
        self.extra_chain = extra_chain
        self.client_auth = client_auth


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


_PROXY_PREFIX = "haproxy:"  # PROXY protocol first (revproxy.server.proxylisten), then TLS


def _without_proxy_prefix(description: str) -> str:
    if description[:len(_PROXY_PREFIX)].lower() == _PROXY_PREFIX:
        return description[len(_PROXY_PREFIX):]
    return description


def is_tls_description(description: str) -> bool:
    return _without_proxy_prefix(description).split(":", 1)[0].lower() in ("ssl", "tls")


def parse_tls_listener(description: str) -> TLSListenerSpec:
    """The spec of an ``ssl:`` or ``tls:`` description (a ``haproxy:`` prefix is skipped:
    ``tcp`` is then the plain endpoint below the PROXY header); ValueError names a bad
    option."""
    parts = split_description(_without_proxy_prefix(description))
    kind = parts[0].lower()
    if kind not in ("ssl", "tls"):
        raise ValueError("not a TLS listener description")
    tcp = ["tcp"]
    named = {}
    for part in parts[1:]:
        if "=" not in part:
            tcp.append(_escape(part))
            continue
        key, value = part.split("=", 1)
        allowed = TCP_OPTIONS + OUR_OPTIONS + (SSL_OPTIONS if kind == "ssl" else ())
        if key not in allowed:
            raise ValueError("%s: listeners take no option %r (they take: %s)"
                             % (kind, key, ", ".join(allowed)))
        if key in TCP_OPTIONS:
            tcp.append("%s=%s" % (key, _escape(value)))
        else:
            named[key] = value
    client_auth = named.get("client_auth")
    if client_auth is not None and client_auth not in ("off", "optional", "required"):
        raise ValueError("client_auth=%s: expected off, optional or required" % client_auth)
    if kind == "ssl":
        private_key = named.get("privateKey", "")
        if not private_key:
            raise ValueError("ssl: listeners need privateKey=KEY.pem (and certKey=CERT.pem "
                             "unless the key file holds the certificate); tls: listeners "
                             "serve the [tls] certificates")
        return TLSListenerSpec(kind, ":".join(tcp), private_key,
                               named.get("certKey", private_key),
                               named.get("extraCertChain", ""), client_auth)
    return TLSListenerSpec(kind, ":".join(tcp), client_auth=client_auth)

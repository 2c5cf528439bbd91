"""The ``[tls]`` section: certificates and the settings of every TLS listener.

Only syntax is checked here; the files themselves (readable, matching key, dates, chain
order) are checked by ``revproxy.tls.pem`` when the runtime is built (start-up, ``--check``,
reload), each problem naming its file.
"""

from __future__ import annotations

from typing import Any, Tuple

from revproxy.config.model import TLS, CertificateEntry
from revproxy.config.reader import (
    Table, boolean, duration, duration_or_off, list_of, one_of, plain_options, text,
)
from revproxy.config.values import parse_policy_name, parse_token

CERTIFICATE_KEYS = ("cert", "key", "passphrase_file", "ocsp_response")
GROUPS = ("X25519", "P-256", "P-384", "P-521", "X448")


def _alpn_protocol(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or not value.isascii():
        raise ValueError('expected ALPN protocol names such as "h2" or "http/1.1"')
    return value


def _group(value: Any) -> str:
    if value not in GROUPS:
        raise ValueError("expected key-exchange groups among: " + ", ".join(GROUPS))
    return value


def _optional_header(value: Any) -> str:
    if value == "":
        return ""
    return parse_token(value).lower()


TLS_FIELDS = {
    "certificate_dir": text(),
    "default_certificate": text(),
    "provider": parse_policy_name,
    "alpn": list_of(_alpn_protocol),
    "min_version": one_of(("1.2", "1.3")),
    "ciphers": text(),
    "tls13_ciphersuites": text(),
    "groups": list_of(_group, min_items=1, unique=True),
    "session_tickets": boolean,
    "ticket_key_lifetime": duration_or_off,
    "session_timeout": duration,
    "client_auth": one_of(("off", "optional", "required")),
    "client_ca": text(),
    "client_subject_header": _optional_header,
    "client_fingerprint_header": _optional_header,
    "openssl_provider": text(),
}  # type: dict


def _certificates(table: Table) -> Tuple[CertificateEntry, ...]:
    raw = table.data.get("certificates", [])
    if not isinstance(raw, list):
        raise table.error("certificates", raw,
                          'expected an array of tables: [{cert = "site.pem", key = "site.key"}]')
    entries = []
    for index, item in enumerate(raw):
        label = "[tls] certificates #%d" % (index + 1)
        if not isinstance(item, dict):
            raise table.error("certificates #%d" % (index + 1), item,
                              'expected a table such as {cert = "site.pem", key = "site.key"}')
        entry = Table(item, table.source, label)
        entry.check_keys(CERTIFICATE_KEYS)
        cert = entry.require("cert", text(allow_empty=False), "a PEM certificate file")
        entries.append(CertificateEntry(
            cert=cert, key=entry.get("key", text(), ""),
            passphrase_file=entry.get("passphrase_file", text(), ""),
            ocsp_response=entry.get("ocsp_response", text(), "")))
    return tuple(entries)


def parse_tls(root: Table) -> TLS:
    table = root.sub_table("tls", "[tls]")
    extra = {"certificates": _certificates(table),
             "provider_options": plain_options(table, "provider_options")}
    tls = table.build(TLS, TLS_FIELDS, extra=extra,
                      also_known=("certificates", "provider_options"))
    if tls.client_auth != "off" and not tls.client_ca:
        raise table.error("client_ca", tls.client_ca,
                          'expected a CA bundle file when client_auth = "%s"' % tls.client_auth)
    return tls

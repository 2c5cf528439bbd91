"""Pure parsers for single config values: sizes, durations, hosts, URLs, endpoints, tokens.

Each ``parse_*`` takes the raw TOML value and returns the normalised value, or raises
``ValueError`` whose message is the explanation shown after the value in a ``ConfigError``
(usually "expected ..."). They know nothing about files or keys.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any, Dict, List, Optional, Tuple

SIZE_EXPECTED = 'expected a size in bytes (integer) or a string like "64k", "10m", "1g"'
DURATION_EXPECTED = (
    'expected a duration in seconds (number) or a string like "500ms", "5s", "2m"'
)
HOST_EXPECTED = (
    'expected a host name ("example.com"), a wildcard ("*.example.com"), '
    'an IPv4 address or a bracketed IPv6 address ("[::1]"), without a port'
)
MEMBER_EXPECTED = (
    'expected an upstream URL "http://host[:port]" or "https://host[:port]" (host name, IPv4 '
    "or [IPv6]; port 1-65535; no path, query or user), or a Unix socket "
    '"unix:/absolute/path" (nginx\'s "http://unix:/absolute/path:" too)'
)
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes on Linux, the terminating NUL included
SERVER_NAME_EXPECTED = (
    'expected "" (the member\'s host) or a host name or IP address to send as SNI and verify '
    "(no port, no wildcard)"
)
ENDPOINT_TYPES = ("tcp", "tcp6", "unix", "ssl", "tls")
ENDPOINT_EXPECTED = (
    "expected a Twisted server endpoint description starting with one of "
    + ", ".join(t + ":" for t in ENDPOINT_TYPES)
    + ' (e.g. "tcp:8080:interface=127.0.0.1"), optionally prefixed "haproxy:" (PROXY '
    'protocol: "haproxy:tcp:8080")'
)
TOKEN_EXPECTED = "expected an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
NAME_EXPECTED = "expected a name of 1-64 letters, digits, '_' or '-'"
NETWORK_EXPECTED = 'expected an IP address or CIDR network ("10.0.0.0/8", "::1")'
POLICY_EXPECTED = (
    'expected a policy name of 1-64 lowercase letters, digits, "-" or "_" (e.g. "round-robin")'
)
STATUS_RANGE_EXPECTED = (
    'expected a status code 100-599 (200) or a range "LOW-HIGH" with LOW <= HIGH ("200-399")'
)
RETRY_WORDS = ("connect-failure", "timeout")
RETRY_EXPECTED = (
    'expected "connect-failure", "timeout" or a status code 500-599 written as an integer (503)'
)
FRACTION_EXPECTED = "expected a number from 0.0 to 1.0"
PROBE_PATH_EXPECTED = (
    'expected a path starting with "/" (a query is allowed; no fragment, spaces or non-ASCII)'
)

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_SIZE_RE = re.compile(r"^([0-9]+)\s*([kmg]?)(?:i?b)?\Z", re.IGNORECASE)
_DURATION_FACTORS = {"s": 1, "m": 60, "h": 3600}
_DURATION_RE = re.compile(
    r"^((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)\s*(ms|s|m|h)?\Z", re.IGNORECASE
)
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
# Patterns end with \Z, not $: "$" also matches before a trailing newline.
_HOSTNAME_RE = re.compile(r"^%s(?:\.%s)*\Z" % (_LABEL, _LABEL))
_AUTHORITY_RE = re.compile(r"^(\[[^\]]*\]|[^:\[\]]+)(?::([0-9]{1,5}))?\Z")
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_POLICY_RE = re.compile(r"^[a-z0-9_-]{1,64}\Z")
_STATUS_RANGE_RE = re.compile(r"^\s*([0-9]{3})\s*(?:-\s*([0-9]{3})\s*)?\Z")
# Printable ASCII but "#": the path goes verbatim into the probe's request line.
_PROBE_PATH_RE = re.compile(r"^/[\x21-\x22\x24-\x7e]*\Z")


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like "64k", "10m", "1g" (binary, any case)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        found = _SIZE_RE.match(value.strip())
        if found:
            return int(found.group(1)) * _SIZE_UNITS[found.group(2).lower()]
    raise ValueError(SIZE_EXPECTED)


def format_size(size: int) -> str:
    """The shortest exact string for ``size`` that ``parse_size`` reads back."""
    for unit in ("g", "m", "k"):
        factor = _SIZE_UNITS[unit]
        if size and size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return str(size)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "500ms", "5s", "2m", "1h" (a bare number = s)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        found = _DURATION_RE.match(value.strip())
        if found:
            number = float(found.group(1))
            unit = (found.group(2) or "s").lower()
            if unit == "ms":
                seconds = number / 1000
            else:
                seconds = number * _DURATION_FACTORS[unit]
            if math.isfinite(seconds):
                return seconds
    raise ValueError(DURATION_EXPECTED)


def format_duration(seconds: float) -> str:
    """An exact string for ``seconds`` that ``parse_duration`` reads back."""
    millis = round(seconds * 1000)
    if millis / 1000 == seconds:
        if millis % 1000:
            return "%dms" % millis
        return "%ds" % (millis // 1000)
    return "%rs" % seconds


def _valid_host(host: str) -> bool:
    """Host name, IPv4 address or bracketed IPv6 address (already lower-cased)."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if len(host) > 253 or not _HOSTNAME_RE.match(host):
        return False
    if host.rsplit(".", 1)[-1].isdigit():
        # A numeric last label is only valid as a dotted IPv4 address.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def parse_host_pattern(value: Any) -> str:
    """A route host: exact host or ``*.suffix`` wildcard, lower-cased, no port."""
    if isinstance(value, str):
        host = value.strip().lower()
        bare = host[2:] if host.startswith("*.") else host
        if bare and _valid_host(bare):
            return host
    raise ValueError(HOST_EXPECTED)


def _split_authority(authority: str) -> Tuple[str, Optional[int]]:
    """(lower-cased host, port or None) from ``host[:port]``; ValueError if malformed."""
    found = _AUTHORITY_RE.match(authority)
    if not found or not _valid_host(found.group(1).lower()):
        raise ValueError("bad authority")
    port = None
    if found.group(2) is not None:
        port = int(found.group(2))
        if not 1 <= port <= 65535:
            raise ValueError("bad port")
    return found.group(1).lower(), port


def parse_host_header(value: Any) -> str:
    """A Host value to send upstream: "" (keep the client's) or ``host[:port]``."""
    expected = 'expected "" (keep the client\'s Host) or "host[:port]"'
    if not isinstance(value, str):
        raise ValueError(expected)
    if value == "":
        return value
    try:
        _split_authority(value)
    except ValueError:
        raise ValueError(expected) from None
    return value


_MEMBER_SCHEMES = (("http://", "http", 80), ("https://", "https", 443))


def parse_member_url(value: Any) -> str:
    """Normalise ``http[s]://host[:port][/]`` to ``scheme://host:port`` (port 80 for http,
    443 for https). The scheme is part of the member's identity: ``http://a:443`` and
    ``https://a:443`` are different members. A Unix-domain socket, ``unix:/path`` or
    nginx's ``http://unix:/path:[/]``, becomes ``unix:/path``."""
    if not isinstance(value, str):
        raise ValueError(MEMBER_EXPECTED)
    unix = _unix_member(value)
    if unix is not None:
        return unix
    lowered = value[:8].lower()
    for prefix, scheme, default_port in _MEMBER_SCHEMES:
        if lowered.startswith(prefix):
            break
    else:
        raise ValueError(MEMBER_EXPECTED)
    rest = value[len(prefix):]
    if rest.endswith("/"):
        rest = rest[:-1]
    if any(char in rest for char in "/?#@"):
        raise ValueError(MEMBER_EXPECTED)
    try:
        host, port = _split_authority(rest)
    except ValueError:
        raise ValueError(MEMBER_EXPECTED) from None
    return "%s://%s:%d" % (scheme, host, default_port if port is None else port)


def _unix_member(value: str) -> Optional[str]:
    """``unix:/path`` for the two Unix-socket spellings, None for anything else; ValueError
    for a Unix spelling whose path is not absolute, holds control characters or is too long
    for a socket address."""
    if value[:5].lower() == "unix:":
        path = value[5:]
    elif value[:12].lower() == "http://unix:":
        path = value[12:]
        if path.endswith(":/"):
            path = path[:-2]
        elif path.endswith(":"):
            path = path[:-1]
        else:
            raise ValueError('expected "http://unix:/absolute/path:" (nginx ends the socket '
                             'path with ":"; no URI after it)')
    else:
        return None
    if not path.startswith("/") or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ValueError('expected "unix:/absolute/path" (an absolute socket path, no control '
                         "characters)")
    if len(path.encode("utf-8")) > UNIX_PATH_MAX:
        raise ValueError("expected a Unix socket path of at most %d bytes (the size of a "
                         "socket address)" % UNIX_PATH_MAX)
    return "unix:" + path


def is_unix_member(url: str) -> bool:
    """A normalised member URL names a Unix-domain socket."""
    return url.startswith("unix:")


def parse_server_name(value: Any) -> str:
    """A TLS server name: "" or a host name / IP address (IPv6 without brackets), lower-cased."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name == "":
            return name
        try:
            ipaddress.ip_address(name)
            return name
        except ValueError:
            pass
        if not name.startswith("[") and _valid_host(name):
            return name
    raise ValueError(SERVER_NAME_EXPECTED)


def _split_description(description: str) -> List[str]:
    """Split an endpoint description on unescaped ':' (Twisted's escaping rule: '\\')."""
    parts, current, escaped = [], [], False
    for char in description:  # config-time only, a few dozen characters
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


split_description = _split_description  # public: revproxy.server.backlog reads endpoint strings


def check_endpoint(value: Any) -> str:
    """Cheap syntax check of a server endpoint description; full parsing is at start-up."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(ENDPOINT_EXPECTED)
    parts = _split_description(value)
    kind, rest = parts[0], parts[1:]
    if kind == "haproxy":  # PROXY protocol before whatever the rest describes
        inner = value[len("haproxy:"):]
        if inner[:8] == "haproxy:" or inner[:5] == "unix:":
            raise ValueError('expected "haproxy:" before a tcp:, tcp6:, ssl: or tls: '
                             "endpoint (once; not unix:, whose peers have no address to trust)")
        check_endpoint(inner)
        return value
    if kind not in ENDPOINT_TYPES or not rest:
        raise ValueError(ENDPOINT_EXPECTED)
    positional = [part for part in rest if "=" not in part]
    named: Dict[str, str] = dict(part.split("=", 1) for part in rest if "=" in part)
    backlog = named.get("backlog")
    if backlog is not None and not (backlog.isdigit() and int(backlog) > 0):
        raise ValueError("expected backlog=N with N a positive integer (the listen queue length)")
    if kind == "unix":
        address = positional[0] if positional else named.get("address", "")
        if not address:
            raise ValueError('expected "unix:/path/to/socket" (a socket path after "unix:")')
        return value
    port = positional[0] if positional else named.get("port", "")
    if not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError(
            'expected "%s:PORT[:interface=ADDRESS]" with PORT 0-65535 after "%s:"'
            % (kind, kind)
        )
    return value


def parse_token(value: Any) -> str:
    """An HTTP token (RFC 9110 tchar), unchanged."""
    if isinstance(value, str) and _TOKEN_RE.match(value):
        return value
    raise ValueError(TOKEN_EXPECTED)


def parse_name(value: Any) -> str:
    """A pool or route name: usable unquoted in TOML keys and in log lines."""
    if isinstance(value, str) and _NAME_RE.match(value):
        return value
    raise ValueError(NAME_EXPECTED)


def parse_network(value: Any) -> str:
    """Canonical CIDR text for an address or network (host bits allowed: strict=False)."""
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            pass
    raise ValueError(NETWORK_EXPECTED)


def parse_policy_name(value: Any) -> str:
    """A balancing policy name; whether such a policy exists is checked at start-up."""
    if isinstance(value, str) and _POLICY_RE.match(value):
        return value
    raise ValueError(POLICY_EXPECTED)


def parse_status_range(value: Any) -> Tuple[int, int]:
    """An inclusive status range from ``200`` or ``"200"`` (one code) or ``"200-399"``."""
    low = high = None
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str):
        found = _STATUS_RANGE_RE.match(value)
        if found:
            low = int(found.group(1))
            high = int(found.group(2) or low)
    if low is None or not 100 <= low <= high <= 599:  # type: ignore[operator]
        raise ValueError(STATUS_RANGE_EXPECTED)
    return low, high  # type: ignore[return-value]


def parse_retry_condition(value: Any) -> str:
    """A ``retry_on`` entry: a failure word, or a 5xx status (an integer) kept as its text."""
    if isinstance(value, str) and value in RETRY_WORDS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 500 <= value <= 599:
        return str(value)
    raise ValueError(RETRY_EXPECTED)


def parse_fraction(value: Any) -> float:
    """A share from 0.0 to 1.0 (integers 0 and 1 too); NaN is refused by the comparison."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ValueError(FRACTION_EXPECTED)


def parse_probe_path(value: Any) -> str:
    """The target of a health probe: origin-form, sent as written."""
    if isinstance(value, str) and _PROBE_PATH_RE.match(value):
        return value
    raise ValueError(PROBE_PATH_EXPECTED)

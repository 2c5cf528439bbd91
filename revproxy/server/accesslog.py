"""Access-log lines: Apache/nginx "combined" plus proxy fields, or one JSON object per line.

Everything a client controls (target, Referer, User-Agent, ...) is escaped so that it can
neither start a new log line nor break the quoting: in the combined format ``"`` becomes
``\\"``, ``\\`` becomes ``\\\\`` and every byte outside printable ASCII becomes ``\\xHH``
(inside the trailing ``key=value`` fields a space is ``\\x20`` too). JSON output is pure
ASCII (``json.dumps`` escapes the rest); bytes fields are decoded as UTF-8 with invalid
bytes written as ``\\xHH``.
"""

from __future__ import annotations

import json
import re
import time as _time
from typing import Callable, Optional, Union

Text = Union[bytes, str, None]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNSAFE = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_UNSAFE_TOKEN = re.compile(rb'[^\x21\x23-\x5b\x5d-\x7e]')


def _escape_byte(match: "re.Match[bytes]") -> bytes:
    byte = match.group()
    if byte == b'"' or byte == b"\\":
        return b"\\" + byte
    return b"\\x%02X" % ord(byte)


class AccessRecord:
    """One finished request, as the access log sees it.

    ``method``, ``target``, ``version``, ``referer``, ``user_agent`` and ``request_id`` may be
    bytes (as parsed) or str; None or empty is logged as ``-``. ``time`` is the epoch second
    the request arrived; ``upstream_time`` is None when no backend answered.
    """

    __slots__ = ("client_ip", "time", "method", "target", "version", "status", "bytes_sent",
                 "referer", "user_agent", "upstream", "upstream_time", "total_time",
                 "request_id", "route", "attempts", "cache", "firewall")

    def __init__(self, client_ip: str, time: float, method: Text, target: Text,
                 version: Text, status: int, bytes_sent: int, referer: Text = None,
                 user_agent: Text = None, upstream: str = "-",
                 upstream_time: Optional[float] = None, total_time: float = 0.0,
                 request_id: Text = None, route: Optional[str] = None,
                 attempts: int = 0, cache: Optional[bytes] = None, firewall=None) -> None:
        self.client_ip = client_ip
        self.time = time
        self.method = method
        self.target = target
        self.version = version
        self.status = status
        self.bytes_sent = bytes_sent
        self.referer = referer
        self.user_agent = user_agent
        self.upstream = upstream
        self.upstream_time = upstream_time
        self.total_time = total_time
        self.request_id = request_id
        self.route = route
        self.attempts = attempts  # members tried (0: answered by the proxy itself)
        self.cache = cache  # the Cache-Status value the answer carried (None: not cached route)
        self.firewall = firewall  # ctx.notes["firewall"]: the firewall's decision, when noted

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self.__slots__)
        return "AccessRecord(%s)" % (fields,)


def _raw(value: Text) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8", "backslashreplace") if isinstance(value, str) else value


def _quoted(value: Text) -> str:
    """Text for inside double quotes; '-' when absent."""
    raw = _raw(value)
    if not raw:
        return "-"
    return _UNSAFE.sub(_escape_byte, raw).decode("ascii")


def _token(value: Text) -> str:
    """Text for an unquoted field (no spaces); '-' when absent."""
    raw = _raw(value)
    if not raw:
        return "-"
    return _UNSAFE_TOKEN.sub(_escape_byte, raw).decode("ascii")


class _ClockCache:
    """Formats ``[10/Oct/2000:13:55:36 +0000]`` (UTC, locale-free), once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            t = _time.gmtime(second)
            self._text = "[%02d/%s/%04d:%02d:%02d:%02d +0000]" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
            self._second = second
        return self._text


_clock = _ClockCache()


def _request_line(record: AccessRecord) -> str:
    if not record.method:
        return "-"
    version = _raw(record.version)
    if version and not version.startswith(b"HTTP/"):
        version = b"HTTP/" + version
    return "%s %s %s" % (_token(record.method), _token(record.target), _token(version))


def format_combined(record: AccessRecord) -> str:
    """``ip - - [time] "GET /x HTTP/1.1" 200 2326 "ref" "ua"`` + proxy fields; no newline."""
    upstream_time = "-" if record.upstream_time is None else "%.3f" % record.upstream_time
    return '%s - - %s "%s" %d %d "%s" "%s" upstream=%s upstream_time=%s total=%.3f ' \
        'rid=%s route=%s attempts=%d' % (
            _token(record.client_ip), _clock.format(record.time), _request_line(record),
            record.status, record.bytes_sent, _quoted(record.referer),
            _quoted(record.user_agent), _token(record.upstream), upstream_time,
            record.total_time, _token(record.request_id), _token(record.route), record.attempts)


def _text(value: Text) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "backslashreplace")


def format_json(record: AccessRecord) -> str:
    """One JSON object (pure ASCII, no newline): the combined format's fields (``request``
    is its request line, ``time_local`` its time), then the proxy's: ``route``, ``member``
    (``upstream`` too, as before), timings in seconds, ``cache`` (hit, stale, revalidated,
    expired, bypass, miss; null off caching routes) with its ``cache_status`` field, the
    request id and ``firewall`` (the firewall's decision as it noted it; null without)."""
    return json.dumps({
        "client_ip": record.client_ip, "remote_user": None, "time": record.time,
        "time_local": _clock.format(record.time)[1:-1], "request": _request_line(record),
        "method": _text(record.method),
        "target": _text(record.target), "version": _text(record.version),
        "status": record.status, "bytes_sent": record.bytes_sent,
        "referer": _text(record.referer), "user_agent": _text(record.user_agent),
        "route": record.route, "member": None if record.upstream == "-" else record.upstream,
        "upstream": record.upstream, "upstream_time": record.upstream_time,
        "total_time": record.total_time, "request_id": _text(record.request_id),
        "attempts": record.attempts, "cache": cache_outcome(record.cache),
        "cache_status": _text(record.cache), "firewall": _plain(record.firewall),
    }, separators=(",", ":"))


def cache_outcome(value: Optional[bytes]) -> Optional[str]:
    """One word for a ``Cache-Status`` value (nginx's $upstream_cache_status, lower case):
    ``hit``; ``stale`` (served stale: while revalidating, or on an origin error);
    ``revalidated`` (the origin said 304); ``expired`` (stale, fetched again); ``bypass``
    (the request would not use the cache); ``miss``. None for None."""
    if value is None:
        return None
    params = {}
    for part in _raw(value).split(b";")[1:]:
        key, _, val = part.strip().partition(b"=")
        params[key] = val.strip(b'"')
    detail = params.get(b"detail")
    if detail in (b"stale-while-revalidate", b"stale-if-error"):
        return "stale"
    if b"hit" in params:
        return "hit"
    fwd = params.get(b"fwd")
    if params.get(b"fwd-status") == b"304" and fwd in (b"stale", b"request"):
        return "revalidated"
    if fwd == b"stale":
        return "expired"
    if fwd in (b"bypass", b"method", b"request"):
        return "bypass"
    return "miss"


def _plain(value):
    """``value`` if JSON can carry it as is, else its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return _text(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


_FORMATS = {"combined": format_combined, "json": format_json}


class AccessLog:
    """Formats records with ``fmt`` ("combined" or "json") and hands ``write`` one line
    each, newline included."""

    def __init__(self, write: Callable[[str], None], fmt: str) -> None:
        try:
            self._format = _FORMATS[fmt]
        except KeyError:
            raise ValueError("unknown access log format %r (expected one of %s)"
                             % (fmt, ", ".join(sorted(_FORMATS))))
        self._write = write

    def log(self, record: AccessRecord) -> None:
        """Write one line for ``record``."""
        self._write(self._format(record) + "\n")

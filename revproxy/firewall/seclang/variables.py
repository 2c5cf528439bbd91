"""Variable values for one transaction, computed lazily and once.

``Variables(view, ...)`` answers ``values(target, exclusions) -> [(name, value)]`` for a
rule target (``ARGS``, ``ARGS:q``, ``ARGS:/^id_/``, ``&ARGS``, ``TX:score``, ``XML:/*`` ...)
with the rule's ``!`` exclusions applied; ``name`` is what MATCHED_VAR_NAME and the log show
("ARGS:q", "REQUEST_URI"). Collection keys are matched case-insensitively. Request-derived
collections are built on first use and kept; TX and the other writable collections are the
transaction's dicts (``stores``: lower-case str key -> bytes) and are read live.

Request line pieces (ModSecurity / Coraza): REQUEST_URI is the target without scheme and
authority (origin form) and without a fragment, as received; QUERY_STRING its query, as
received; REQUEST_FILENAME its path, percent-decoded (``%XX`` only, ``+`` kept, invalid
escapes kept), and REQUEST_BASENAME the last segment of that (after ``/`` or ``\\``).
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .api import BodyResult, RequestView

Entry = Tuple[bytes, str, bytes]  # (lower-case key, display name, value)
WRITABLE = ("TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "ENV")
_EMPTY_BODY = BodyResult()


def split_target(raw: bytes) -> Tuple[bytes, bytes, bytes]:
    """(REQUEST_URI, path, query) of a request target."""
    uri = raw
    if b"://" in uri[:16] and not uri.startswith(b"/"):
        rest = uri.split(b"://", 1)[1]
        slash = rest.find(b"/")
        uri = rest[slash:] if slash >= 0 else b"/"
    hash_at = uri.find(b"#")
    if hash_at >= 0:
        uri = uri[:hash_at]
    path, _, query = uri.partition(b"?")
    return uri, path, query


_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")


def percent_decode(raw: bytes) -> bytes:
    """``%XX`` -> the byte; everything else (``+``, invalid escapes) as it is."""
    if b"%" not in raw:
        return raw
    return _PCT.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


class Variables:
    """The variables of one transaction; the engine sets ``body``, ``body_raw``,
    ``response_*`` and ``matched*`` as phases progress."""

    def __init__(self, view: RequestView, stores: Dict[str, Dict[str, bytes]],
                 parse_query: Callable, parse_cookies: Callable, now: Callable[[], float],
                 max_args: int = 1000) -> None:
        self.view = view
        self.stores = stores
        self._parse_query = parse_query
        self._parse_cookies = parse_cookies
        self._now = now
        self._start = now()
        self._max_args = max_args
        self._colls: Dict[str, List[Entry]] = {}
        self._index: Dict[str, Dict[bytes, List[Entry]]] = {}
        self._scalars: Dict[str, Optional[bytes]] = {}
        self._query_args: Optional[List[Tuple[bytes, bytes]]] = None
        self._vcache: Dict[str, List[Tuple[str, bytes]]] = {}
        self.uri, self.path, self.query = split_target(view.uri_raw)
        self.body: BodyResult = _EMPTY_BODY
        self.body_raw: Optional[bytes] = None
        self.body_variable = False        # REQUEST_BODY populated
        self.body_processor = b""         # REQBODY_PROCESSOR
        self.body_truncated = False
        self.response_status: Optional[int] = None
        self.response_headers: Sequence[Tuple[bytes, bytes]] = ()
        self.response_body: Optional[bytes] = None
        self.matched_var = b""
        self.matched_var_name = b""
        self.matched: List[Tuple[str, bytes]] = []  # MATCHED_VARS of the current rule
        self.rule = None                  # the rule being evaluated (RULE)

    # --- building ---------------------------------------------------------------------
    def header_values(self, name: bytes) -> List[bytes]:
        return [v for k, v in self.view.headers if k == name]

    def query_args(self) -> Sequence[Tuple[bytes, bytes]]:
        if self._query_args is None:
            r = self._parse_query(self.query, self._max_args)
            self._query_args = list(getattr(r, "args", r))
        return self._query_args

    def _pairs(self, name: str) -> Sequence[Tuple[bytes, bytes]]:
        if name == "ARGS_GET":
            return self.query_args()
        if name == "ARGS_POST":
            return self.body.args
        if name == "ARGS":
            return list(self.query_args()) + list(self.body.args)
        if name == "REQUEST_HEADERS":
            return self.view.headers
        if name == "REQUEST_COOKIES":
            return self._parse_cookies(self.header_values(b"cookie"))
        if name == "RESPONSE_HEADERS":
            return self.response_headers
        if name == "FILES":
            return [(f.name, f.filename) for f in self.body.files]
        if name == "FILES_SIZES":
            return [(f.name, b"%d" % f.size) for f in self.body.files]
        if name == "FILES_NAMES":
            return [(f.name, f.name) for f in self.body.files]
        if name == "MULTIPART_PART_HEADERS":
            return self.body.part_headers
        return ()

    def collection(self, name: str) -> List:
        """Entries (lower key, display, value, key) of a request/response collection."""
        entries = self._colls.get(name)
        if entries is None:
            prefix = name + ":"
            if name.endswith("_NAMES") and name != "FILES_NAMES":
                entries = [(e[0], prefix + e[3].decode("latin-1"), e[3], e[3])
                           for e in self.collection(name[:-6])]
            else:
                entries = [(k.lower(), prefix + k.decode("latin-1"), v, k)
                           for k, v in self._pairs(name)]
            if self._stable(name):
                self._colls[name] = entries
        return entries

    def _stable(self, name: str) -> bool:
        """Whether a collection can no longer change (so it may be cached)."""
        if name.startswith("RESPONSE"):
            return self.response_status is not None
        if self._stable_request(name):
            return True
        return self.body_raw is not None

    def _indexed(self, name: str) -> Dict[bytes, List]:
        idx = self._index.get(name)
        if idx is None:
            idx = {}
            for e in self.collection(name):
                idx.setdefault(e[0], []).append(e)
            if self._stable(name):
                self._index[name] = idx
        return idx

    def invalidate_body(self) -> None:
        """The body (or response) arrived: drop collections built before it."""
        self._vcache.clear()
        for name in list(self._colls):
            if not self._stable_request(name):
                del self._colls[name]
        for name in list(self._index):
            if not self._stable_request(name):
                del self._index[name]

    @staticmethod
    def _stable_request(name: str) -> bool:
        return name in ("ARGS_GET", "ARGS_GET_NAMES", "REQUEST_HEADERS",
                        "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES")

    # --- reading ----------------------------------------------------------------------
    def values(self, target, exclusions: Sequence, cache_key: Optional[str] = None
               ) -> List[Tuple[str, bytes]]:
        """[(display name, value)] for ``target`` minus ``exclusions``. With a
        ``cache_key`` (the target and exclusions as text), a result that cannot change
        before the next body arrives is kept: the CRS reads the same targets in many rules."""
        if cache_key is None or target.name in _VOLATILE:
            if target.name in WRITABLE and target.key is not None and target.regex is None \
                    and not target.count:  # TX:name, the CRS's most common target
                val = self.stores[target.name.lower()].get(target.key)
                return [] if val is None else [(target.name + ":" + target.key, val)]
            return self._compute(target, exclusions)
        hit = self._vcache.get(cache_key)
        if hit is None:
            hit = self._vcache[cache_key] = self._compute(target, exclusions)
        return hit

    def _compute(self, target, exclusions: Sequence) -> List[Tuple[str, bytes]]:
        name = target.name
        if name in WRITABLE:
            entries = self._store_entries(name, target)
        elif name in ("MATCHED_VARS", "MATCHED_VARS_NAMES"):
            entries = [(n.lower().encode("latin-1"), n, v if name == "MATCHED_VARS"
                        else n.encode("latin-1"), n) for n, v in self.matched]
            entries = self._select(entries, target)
        elif name == "XML":
            xml = self.body.xml
            vals = xml.xpath(target.raw_key or "/*") if xml is not None else []
            entries = [(b"", "XML:" + (target.raw_key or "/*"), v, b"") for v in vals]
        elif name == "RULE":
            entries = self._select(self._rule_entries(), target)
        elif name in _COLLECTION_NAMES:
            if target.key is not None and target.regex is None:
                entries = self._indexed(name).get(target.key_bytes, [])
            else:
                entries = self._select(self.collection(name), target)
        else:
            v = self.scalar(name)
            if target.count:
                return [(name, b"0" if v is None else b"1")]
            if v is None or (exclusions and any(x.name == name for x in exclusions)):
                return []
            return [(name, v)]
        if exclusions:
            entries = [e for e in entries
                       if not any(x.excludes(name, e[0]) for x in exclusions)]
        if target.count:
            return [(target.text.lstrip("&"), b"%d" % len(entries))]
        return [(e[1], e[2]) for e in entries]

    @staticmethod
    def _select(entries: List, target) -> List:
        if target.regex is not None:
            rx = target.regex
            return [e for e in entries if rx.search(e[0]) is not None]
        if target.key is not None:
            kb = target.key_bytes
            return [e for e in entries if e[0] == kb]
        return entries

    def _store_entries(self, name: str, target) -> List:
        store = self.stores[name.lower()]
        prefix = name + ":"
        if target.key is not None and target.regex is None:
            v = store.get(target.key)
            return [] if v is None else [(target.key_bytes, prefix + target.key, v, b"")]
        items = [(k.encode("latin-1"), prefix + k, v, b"") for k, v in store.items()]
        return self._select(items, target)

    def _rule_entries(self) -> List:
        r = self.rule
        if r is None:
            return []
        out = []
        for key in ("id", "phase", "severity", "rev", "ver", "maturity", "accuracy"):
            v = getattr(r, key)
            out.append((key.encode(), "RULE:" + key, str(v).encode("latin-1"), b""))
        for key in ("msg", "logdata"):
            m = getattr(r, key)
            out.append((key.encode(), "RULE:" + key, m.text.encode("utf-8") if m else b"",
                        b""))
        return out

    def macro_value(self, collection: str, key: Optional[str], tx) -> bytes:
        """``%{collection.key}`` (see macros): first value, or b""."""
        if collection in WRITABLE:
            if key is None:
                return b""
            return self.stores[collection.lower()].get(key, b"")
        if collection == "RULE":
            r = self.rule
            if r is None or key is None:
                return b""
            if key in ("msg", "logdata"):
                m = getattr(r, key)
                return m.expand(tx) if m is not None and key == "msg" else \
                    (m.text.encode("utf-8") if m is not None else b"")
            v = getattr(r, key, None)
            return b"" if v is None else str(v).encode("latin-1")
        if key is None:
            if collection in _COLLECTION_NAMES:
                return b""
            v = self.scalar(collection)
            return b"" if v is None else v
        if collection in _COLLECTION_NAMES:
            hits = self._indexed(collection).get(key.encode("latin-1"))
            return hits[0][2] if hits else b""
        return b""

    def scalar(self, name: str) -> Optional[bytes]:
        if name in self._scalars:
            return self._scalars[name]
        fn = _SCALARS.get(name)
        v = fn(self) if fn is not None else None
        if name in _STABLE:
            self._scalars[name] = v
        return v


def _header(v: Variables, name: bytes) -> Optional[bytes]:
    vals = v.header_values(name)
    return vals[0] if vals else None


def _server_name(v: Variables) -> bytes:
    host = _header(v, b"host") or v.view.server_addr.encode("latin-1")
    if host.startswith(b"["):
        return host[:host.find(b"]") + 1]
    return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host


def _basename(v: Variables) -> bytes:
    p = percent_decode(v.path)
    cut = max(p.rfind(b"/"), p.rfind(b"\\"))
    return p[cut + 1:]


def _args_combined(v: Variables) -> bytes:
    return b"%d" % sum(len(e[3]) + len(e[2]) for e in v.collection("ARGS"))


def _files_combined(v: Variables) -> bytes:
    return b"%d" % sum(f.size for f in v.body.files)


def _flag(name: str) -> Callable[[Variables], Optional[bytes]]:
    def get(v: Variables) -> Optional[bytes]:
        if v.body_processor != b"MULTIPART" and name.startswith("MULTIPART"):
            return None
        return b"%d" % v.body.flags.get(name, 0)
    return get


def _body_error(v: Variables, name: str) -> bytes:
    return b"1" if v.body.flags.get(name) or v.body.error else b"0"


def _request_line(v: Variables) -> bytes:
    return b"%s %s %s" % (v.view.method, v.view.uri_raw, v.view.protocol)


def _full_request(v: Variables) -> bytes:
    head = _request_line(v) + b"\r\n" + b"".join(
        k + b": " + val + b"\r\n" for k, val in v.view.headers) + b"\r\n"
    return head + (v.body_raw or b"")


def _time(fmt: str) -> Callable[[Variables], bytes]:
    import time

    def get(v: Variables) -> bytes:
        t = time.localtime(v._now())
        if fmt == "TIME":
            return time.strftime("%H:%M:%S", t).encode()
        return b"%d" % {"TIME_DAY": t.tm_mday, "TIME_HOUR": t.tm_hour, "TIME_MIN": t.tm_min,
                        "TIME_MON": t.tm_mon - 1, "TIME_SEC": t.tm_sec,
                        "TIME_WDAY": (t.tm_wday + 1) % 7, "TIME_YEAR": t.tm_year}[fmt]
    return get


def _response_header(name: bytes) -> Callable[[Variables], Optional[bytes]]:
    def get(v: Variables) -> Optional[bytes]:
        for k, val in v.response_headers:
            if k.lower() == name:
                return val
        return None
    return get


_SCALARS: Dict[str, Callable[[Variables], Optional[bytes]]] = {
    "REQUEST_METHOD": lambda v: v.view.method,
    "REQUEST_PROTOCOL": lambda v: v.view.protocol,
    "REQUEST_URI_RAW": lambda v: v.view.uri_raw,
    "REQUEST_URI": lambda v: v.uri,
    "REQUEST_FILENAME": lambda v: percent_decode(v.path),
    "PATH_INFO": lambda v: b"",
    "REQUEST_BASENAME": _basename,
    "QUERY_STRING": lambda v: v.query,
    "REQUEST_LINE": _request_line,
    "REMOTE_ADDR": lambda v: v.view.remote_addr.encode("latin-1"),
    "REMOTE_HOST": lambda v: v.view.remote_addr.encode("latin-1"),
    "REMOTE_PORT": lambda v: b"%d" % v.view.remote_port,
    "SERVER_ADDR": lambda v: v.view.server_addr.encode("latin-1"),
    "SERVER_PORT": lambda v: b"%d" % v.view.server_port,
    "SERVER_NAME": _server_name,
    "UNIQUE_ID": lambda v: v.view.request_id,
    "ARGS_COMBINED_SIZE": _args_combined,
    "FILES_COMBINED_SIZE": _files_combined,
    "REQUEST_BODY": lambda v: v.body_raw if v.body_variable else None,
    "REQUEST_BODY_LENGTH": lambda v: b"%d" % len(v.body_raw or b""),
    "FULL_REQUEST": _full_request,
    "FULL_REQUEST_LENGTH": lambda v: b"%d" % len(_full_request(v)),
    "REQBODY_PROCESSOR": lambda v: v.body_processor,
    "REQBODY_ERROR": lambda v: _body_error(v, "REQBODY_ERROR"),
    "REQBODY_PROCESSOR_ERROR": lambda v: _body_error(v, "REQBODY_PROCESSOR_ERROR"),
    "MULTIPART_NAME": lambda v: getattr(v.body, "multipart_name", None) or None,
    "MULTIPART_FILENAME": lambda v: getattr(v.body, "multipart_filename", None) or None,
    "REQBODY_ERROR_MSG": lambda v: v.body.error,
    "REQBODY_PROCESSOR_ERROR_MSG": lambda v: v.body.error,
    "INBOUND_DATA_ERROR": lambda v: b"1" if v.body_truncated else b"0",
    "OUTBOUND_DATA_ERROR": lambda v: b"0",
    "URLENCODED_ERROR": lambda v: b"%d" % v.body.flags.get("URLENCODED_ERROR", 0),
    "MATCHED_VAR": lambda v: v.matched_var,
    "MATCHED_VAR_NAME": lambda v: v.matched_var_name,
    "RESPONSE_STATUS": lambda v: None if v.response_status is None
    else b"%d" % v.response_status,
    "RESPONSE_PROTOCOL": lambda v: b"HTTP/1.1",
    "STATUS_LINE": lambda v: None if v.response_status is None
    else b"HTTP/1.1 %d" % v.response_status,
    "RESPONSE_BODY": lambda v: v.response_body,
    "RESPONSE_CONTENT_TYPE": _response_header(b"content-type"),
    "RESPONSE_CONTENT_LENGTH": _response_header(b"content-length"),
    "AUTH_TYPE": lambda v: None,
    "REMOTE_USER": lambda v: None,
    "WEBSERVER_ERROR_LOG": lambda v: None,
    "HIGHEST_SEVERITY": lambda v: b"255",
    "MSC_PCRE_LIMITS_EXCEEDED": lambda v: b"0",
    "DURATION": lambda v: b"%d" % int((v._now() - v._start) * 1000),
    "TIME_EPOCH": lambda v: b"%d" % int(v._now()),
}
for _n in ("TIME", "TIME_DAY", "TIME_HOUR", "TIME_MIN", "TIME_MON", "TIME_SEC", "TIME_WDAY",
           "TIME_YEAR"):
    _SCALARS[_n] = _time(_n)
for _n in ("MULTIPART_BOUNDARY_QUOTED", "MULTIPART_BOUNDARY_WHITESPACE",
           "MULTIPART_CRLF_LF_LINES", "MULTIPART_DATA_AFTER", "MULTIPART_DATA_BEFORE",
           "MULTIPART_FILE_LIMIT_EXCEEDED", "MULTIPART_HEADER_FOLDING",
           "MULTIPART_INVALID_HEADER_FOLDING", "MULTIPART_INVALID_PART",
           "MULTIPART_INVALID_QUOTING", "MULTIPART_LF_LINE", "MULTIPART_MISSING_SEMICOLON",
           "MULTIPART_STRICT_ERROR", "MULTIPART_UNMATCHED_BOUNDARY"):
    _SCALARS[_n] = _flag(_n)

# Targets whose values change between rules (never kept by ``values``).
_VOLATILE = frozenset(WRITABLE + (
    "MATCHED_VAR", "MATCHED_VARS", "MATCHED_VAR_NAME", "MATCHED_VARS_NAMES", "RULE",
    "DURATION", "TIME", "TIME_DAY", "TIME_EPOCH", "TIME_HOUR", "TIME_MIN", "TIME_MON",
    "TIME_SEC", "TIME_WDAY", "TIME_YEAR", "REQBODY_PROCESSOR", "REQUEST_BODY",
    "HIGHEST_SEVERITY",
))

_STABLE = frozenset((  # request-line and connection facts: computed once
    "REQUEST_METHOD", "REQUEST_PROTOCOL", "REQUEST_URI_RAW", "REQUEST_URI",
    "REQUEST_FILENAME", "REQUEST_BASENAME", "QUERY_STRING", "REQUEST_LINE", "REMOTE_ADDR",
    "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "UNIQUE_ID",
))

_COLLECTION_NAMES = frozenset((
    "ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
    "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
    "RESPONSE_HEADERS", "RESPONSE_HEADERS_NAMES", "FILES", "FILES_NAMES", "FILES_SIZES",
    "FILES_TMPNAMES", "FILES_TMP_CONTENT", "MULTIPART_PART_HEADERS", "GEO",
))

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

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .api import BodyResult, RequestView
from .keymatch import KeyMatcher, drop_excluded
from .keynames import entries as keyed_entries, name_entries
from .rules import VOLATILE
from .scalars import SCALARS as _SCALARS, WRITABLE, percent_decode  # noqa: F401

Entry = Tuple[bytes, str, bytes]  # (lower-case key, display name, value)
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


class Variables:
    """The variables of one transaction; the engine sets ``body``, ``body_raw``,
    ``response_*`` and ``matched*`` as phases progress."""

    def __init__(self, view: RequestView, stores: Dict[str, Dict[str, bytes]], env: tuple
                 ) -> None:
        """``env``: (parse_query, parse_cookies, now, the most arguments parsed), shared by
        the WAF's transactions (one attribute, not four, per transaction)."""
        self.view = view
        self.stores = stores
        self._env = env
        self._start = env[2]()
        self._colls: Dict[str, List[Entry]] = {}
        self._index: Dict[str, Dict[bytes, List[Entry]]] = {}
        self._scalars: Dict[str, Optional[bytes]] = {}
        self._query_args: Optional[List[Tuple[bytes, bytes]]] = None
        self._names: Optional[Tuple[bytes, ...]] = None  # header_names()
        self._vcache: Dict[str, List[Tuple[str, bytes]]] = {}
        self._split: Optional[Tuple[bytes, bytes, bytes]] = None  # split_target's, when read
        self._body: BodyResult = _EMPTY_BODY
        self._parse: Optional[tuple] = None  # the body's pending parse (``defer_body``)
        self.body_parser: Optional[str] = None  # the processor the intake parses it with
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

    # --- the parsed body ---------------------------------------------------------------
    @property
    def body(self) -> BodyResult:
        """The parsed request body: parsed when first read (``defer_body``), so a phase
        whose records decide it without reading the body (atoms.py, listmemo.py) never
        parses it, nor frees what a parse builds."""
        parse = self._parse
        if parse is not None:
            self._parse = None
            fn, args, kwargs = parse
            self._body = fn(*args, **kwargs)
        return self._body

    @body.setter
    def body(self, value: BodyResult) -> None:
        self._parse = None
        self._body = value

    def defer_body(self, fn: Callable[..., BodyResult], args: tuple, kwargs: dict) -> None:
        """``fn(*args, **kwargs)`` gives the body once something reads it (the intake's;
        a tuple rather than a closure: fewer objects per transaction)."""
        self._parse = (fn, args, kwargs)
        self._body = _EMPTY_BODY

    @property
    def has_body(self) -> bool:
        """Whether a body was taken for parsing (without parsing it)."""
        return self._parse is not None or self._body is not _EMPTY_BODY

    def _now(self) -> float:
        return self._env[2]()

    # --- the request target (split when first read: a replayed phase never reads it) ----
    def _target(self) -> Tuple[bytes, bytes, bytes]:
        got = self._split
        if got is None:
            got = self._split = split_target(self.view.uri_raw)
        return got

    @property
    def uri(self) -> bytes:
        """REQUEST_URI: the target without scheme, authority and fragment."""
        return self._target()[0]

    @property
    def path(self) -> bytes:
        return self._target()[1]

    @property
    def query(self) -> bytes:
        return self._target()[2]

    # --- building ---------------------------------------------------------------------
    def header_names(self) -> Tuple[bytes, ...]:
        """The request header names as sent, in order (kept: the atoms of phases 1 and 2
        and the list records read them)."""
        got = self._names
        if got is None:
            got = self._names = tuple([h[0] for h in self.view.headers])
        return got

    def header_values(self, name: bytes) -> List[bytes]:
        return [v for k, v in self.view.headers if k == name]

    def query_args(self) -> Sequence[Tuple[bytes, bytes]]:
        if self._query_args is None:
            if not self.query:  # (most requests: nothing to parse)
                self._query_args = []
                return self._query_args
            env = self._env
            r = env[0](self.query, env[3])
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
            values = self.header_values(b"cookie")
            return self._env[1](values) if values else ()
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
        if entries is None:  # (keys' lower case and display names: keynames.py)
            if name.endswith("_NAMES") and name != "FILES_NAMES":
                entries = name_entries(name, self.collection(name[:-6]))
            else:
                entries = keyed_entries(name, self._pairs(name))
            self._colls[name] = entries
        return entries

    def _indexed(self, name: str) -> Dict[bytes, List]:
        idx = self._index.get(name)
        if idx is None:
            idx = {}
            for e in self.collection(name):
                idx.setdefault(e[0], []).append(e)
            self._index[name] = idx
        return idx

    def invalidate_body(self) -> None:
        """The body (or response) arrived: drop what was built before it, but for the
        collections no body changes (``_STABLE_REQUEST``). Until then every collection is
        kept once built: the engine calls this (``Evaluator.invalidate``) whenever the body
        or the response it reads changes."""
        if self._vcache:
            self._vcache.clear()
        for kept in (self._colls, self._index) if self._colls or self._index else ():
            for name in [n for n in kept if n not in _STABLE_REQUEST]:
                del kept[name]

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
                if val is None or exclusions and any(
                        x.excludes(target.name, target.key_bytes) for x in exclusions):
                    return []  # (ctl:ruleRemoveTargetById=N;TX:name removes it)
                return [(target.name + ":" + target.key, val)]
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
            mine = [x for x in exclusions if x.name == name]
            if mine:  # the CRS excludes cookies and arguments by name: few concern this
                entries = drop_excluded(entries, mine)
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
        if target.regex is not None:  # TX:/^MSC_/ ...: which keys match is remembered
            keep = target.keep
            if keep is None:
                keep = target.keep = KeyMatcher(target.regex)
            yes = keep.matching(store)
            if not yes:  # (CRS 922110's TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/ ...)
                return []
            # the keys in the store's order, filtered in C (the CRS's TX holds ~50 keys,
            # a regex key selects a few)
            return [(k.encode("latin-1"), prefix + k, store[k], b"")
                    for k in filter(yes.__contains__, store)]
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


_VOLATILE = VOLATILE

_STABLE = frozenset((  # request-line and connection facts: computed once
    "REQUEST_METHOD", "REQUEST_PROTOCOL", "REQUEST_URI_RAW", "REQUEST_URI",
    "REQUEST_FILENAME", "REQUEST_BASENAME", "QUERY_STRING", "REQUEST_LINE", "REMOTE_ADDR",
    "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "UNIQUE_ID",
))

# request collections no body changes
_STABLE_REQUEST = frozenset(("ARGS_GET", "ARGS_GET_NAMES", "REQUEST_HEADERS",
                             "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES",
                             "REQUEST_COOKIES_NAMES"))

_COLLECTION_NAMES = frozenset((
    "ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
    "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
    "RESPONSE_HEADERS", "RESPONSE_HEADERS_NAMES", "FILES", "FILES_NAMES", "FILES_SIZES",
    "FILES_TMPNAMES", "FILES_TMP_CONTENT", "MULTIPART_PART_HEADERS", "GEO",
))

"""The contract between the SecLang engine and the rest of the proxy.

Data the engine works on is **bytes** everywhere (ModSecurity matches bytes, not text):
variable values, transformation inputs and outputs, operator inputs, captures. Rule-file
text is read as UTF-8 and patterns are compiled from its UTF-8 bytes (PCRE without the UTF
flag, as ModSecurity does), so ``\\w`` and case folding are ASCII-only.

Modules and who owns them (one job each):

- ``parser``      rule files -> directives (errors: ``SecLangError`` with file, line, name)
- ``rules``       the compiled rule model (targets, transformations, operator, actions, chains)
- ``variables``   variable collections read from a ``Transaction`` (ARGS, REQUEST_HEADERS ...)
- ``actions``     action semantics (setvar, ctl, skipAfter, capture, msg/logdata, severity ...)
- ``macros``      ``%{tx.x}`` expansion
- ``engine``      ``load_waf`` and ``Transaction`` below: phases, chains, flow, logging
- ``operators``   ``build_operator(name, argument, base_dir) -> Operator``
- ``transforms``  ``TRANSFORMS``: lower-case name -> ``Callable[[bytes], bytes]``
- ``libinjection`` ``is_sqli(data) -> (bool, fingerprint)``, ``is_xss(data) -> bool``
- ``bodies``      request body processors (URL-encoded, multipart, JSON, XML), query and
                  cookie parsing: ``BodyResult`` below
"""

from __future__ import annotations

from typing import Callable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

Pairs = Sequence[Tuple[bytes, bytes]]


class SecLangError(ValueError):
    """A rule file the engine refuses: ``file``, ``line`` (1-based, 0 if unknown) and a
    readable message naming the directive / operator / variable / action at fault.
    ``str()`` is ``"FILE:LINE: message"``."""

    def __init__(self, file: str, line: int, message: str):
        ValueError.__init__(self, "%s:%d: %s" % (file, line, message))
        self.file = file
        self.line = line
        self.message = message


class RequestView(NamedTuple):
    """What the engine reads about one request (immutable, built by the proxy).

    ``headers``: (lower-case name, value) in arrival order, repeats kept. ``uri_raw``: the
    request target exactly as received (REQUEST_URI_RAW; REQUEST_URI is the same for
    origin-form targets). ``protocol``: b"HTTP/1.1" or b"HTTP/2.0". ``tls``: None or the
    proxy's ``TLSFacts``. ``request_id``: bytes (UNIQUE_ID)."""

    remote_addr: str
    remote_port: int
    server_addr: str
    server_port: int
    method: bytes
    uri_raw: bytes
    protocol: bytes
    headers: Pairs
    request_id: bytes = b"-"
    tls: object = None


class Interruption(NamedTuple):
    """A disruptive decision: ``action`` is "deny", "drop", "redirect" or "allow";
    ``status`` the HTTP status (403 unless the rule said otherwise); ``rule_id`` the rule
    whose action disrupted (949110 for the CRS's inbound anomaly block); ``data`` the
    redirect URL for "redirect", else b""."""

    action: str
    status: int
    rule_id: int
    data: bytes = b""


class MatchRecord(NamedTuple):
    """One matched rule as it goes to the log (the proxy writes one structured line per
    decision with these): ``rule_id``, ``phase``, ``msg`` and ``logdata`` (macro-expanded,
    bytes, truncated to 512), ``severity`` (str or ""), ``tags``, ``variable`` (e.g.
    "ARGS:q"), ``value`` (the matched value after transformations, truncated to 128),
    ``disruptive`` (whether this rule's disruptive action took effect)."""

    rule_id: int
    phase: int
    msg: bytes
    logdata: bytes
    severity: str
    tags: Tuple[str, ...]
    variable: str
    value: bytes
    disruptive: bool


class Match(NamedTuple):
    """What an operator returns on a match: ``data`` (the part that matched: the regex's
    group 0, the phrase for @pm, the value otherwise) and ``captures`` (groups 0..9 for
    @rx and friends with ``capture``; empty for the others)."""

    data: bytes
    captures: Tuple[bytes, ...] = ()


# An operator: ``op(value, expand)`` -> Match or None. ``expand(text) -> bytes`` expands
# macros in the operator's argument (``@eq %{tx.x}``, ``@within %{tx.allowed_methods}``);
# operators whose argument holds no macro compile once and ignore it. Negation (``!@rx``)
# is applied by the engine, not the operator.
Operator = Callable[[bytes, Callable[[str], bytes]], Optional[Match]]


class FilePart(NamedTuple):
    """One uploaded file of a multipart body (FILES, FILES_NAMES, FILES_SIZES ...)."""

    name: bytes
    filename: bytes
    size: int
    content_type: bytes


class BodyResult(NamedTuple):
    """A parsed request body.

    ``args`` (ARGS_POST; JSON keys flattened as ModSecurity/Coraza do: ``json.a.b``, arrays
    ``json.a.0``), ``files``, ``flags`` (variables such as MULTIPART_STRICT_ERROR,
    MULTIPART_UNMATCHED_BOUNDARY, REQBODY_PROCESSOR_ERROR ... -> int, plus
    MULTIPART_BOUNDARY_QUOTED etc.), ``error`` (REQBODY_ERROR_MSG, b"" if none),
    ``part_headers`` (MULTIPART_PART_HEADERS: (part name, raw header line) pairs),
    ``xml`` (None, or an object with ``xpath(expr: str) -> List[bytes]`` for XML:/...),
    ``raw_length`` (bytes seen), ``multipart_name`` / ``multipart_filename``
    (MULTIPART_NAME / MULTIPART_FILENAME: the last part ``name`` / ``filename`` seen)."""

    args: Pairs = ()
    files: Sequence[FilePart] = ()
    flags: Mapping[str, int] = {}
    error: bytes = b""
    part_headers: Pairs = ()
    xml: object = None
    raw_length: int = 0
    multipart_name: bytes = b""
    multipart_filename: bytes = b""


class Transaction:
    """One request's evaluation (``engine.Transaction`` implements it; documented here).

    Built by ``waf.transaction(view)``. The proxy calls the phases in order and stops at the
    first Interruption (which it answers with ``interruption.status`` and the request id,
    never rule internals); rules in "detect" mode and an engine in DetectionOnly log but
    return None.

    - ``phase1()``                         request headers (REQUEST_HEADERS, ARGS_GET ...)
    - ``phase2(body: Optional[bytes])``    the buffered request body (None: no body; the
                                           proxy passes at most the configured limit and
                                           sets ``body_truncated``)
    - ``phase3(status: int, headers)``     the backend's response head
    - ``phase4(body: bytes)``              the response body (bounded prefix)
    - ``phase5()``                         logging phase; never interrupts

    Read afterwards: ``matches`` (List[MatchRecord]), ``interruption``, ``anomaly_score``
    (int: tx.blocking_inbound_anomaly_score or tx.anomaly_score, 0 if unset),
    ``variables`` (the TX collection, for tests and logs).
    """

    matches: List[MatchRecord]
    interruption: Optional[Interruption]
    anomaly_score: int


# ``engine.load_waf(sources, *, modes=None, directives=()) -> WAF``:
#   ``sources``: a sequence of (file name, text) pairs in load order (the caller reads the
#   files; ``Include`` directives are resolved relative to the including file; @pmFromFile
#   data files relative to the rule file's directory); ``directives``: extra SecLang text
#   loaded after the sources, named "<config>" in errors (the proxy's paranoia level,
#   thresholds...). ``modes``: rule id -> "off" | "detect" | "enforce" (tags already
#   resolved by the caller via ``WAF.ids_with_tag``): "off" removes the rule; "detect"
#   evaluates and logs it but applies none of its setvar / disruptive / ctl actions.
#   ``WAF.transaction(view) -> Transaction``; ``WAF.rule_ids`` (frozenset);
#   ``WAF.ids_with_tag(tag) -> frozenset``; ``WAF.engine_mode`` ("On", "DetectionOnly",
#   "Off"); ``WAF.describe()`` (rule id -> (phase, msg, tags), for reload diffs).

"""The compiled rule model: what ``engine`` evaluates, built once at load.

A ``Rule`` holds its targets (``Target``), its transformation chain (resolved to callables,
with ids for each prefix so the transaction can cache results per (prefix, value)), its
operator, its actions (``actions.compile_actions`` fills them in) and its chain child. Rules
are shared by every transaction and never changed by one: per-transaction removals and
target exclusions live in the transaction.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import identity
from .api import SecLangError
from .macros import compile_macro
from .parser import VariableSpec
from .scalars import WRITABLE

# Variables the engine knows; anything else is refused at load with its name.
COLLECTIONS = frozenset("""
ARGS ARGS_GET ARGS_POST ARGS_NAMES ARGS_GET_NAMES ARGS_POST_NAMES REQUEST_HEADERS
REQUEST_HEADERS_NAMES REQUEST_COOKIES REQUEST_COOKIES_NAMES FILES FILES_NAMES FILES_SIZES
FILES_TMPNAMES FILES_TMP_CONTENT MULTIPART_PART_HEADERS
RESPONSE_HEADERS RESPONSE_HEADERS_NAMES TX IP GLOBAL SESSION USER RESOURCE ENV XML
MATCHED_VARS MATCHED_VARS_NAMES RULE GEO
""".split())

SCALARS = frozenset("""
ARGS_COMBINED_SIZE AUTH_TYPE DURATION FILES_COMBINED_SIZE FULL_REQUEST FULL_REQUEST_LENGTH
HIGHEST_SEVERITY INBOUND_DATA_ERROR MATCHED_VAR MATCHED_VAR_NAME MULTIPART_BOUNDARY_QUOTED
MULTIPART_BOUNDARY_WHITESPACE MULTIPART_CRLF_LF_LINES MULTIPART_DATA_AFTER
MULTIPART_DATA_BEFORE MULTIPART_FILE_LIMIT_EXCEEDED MULTIPART_HEADER_FOLDING
MULTIPART_INVALID_HEADER_FOLDING MULTIPART_INVALID_PART MULTIPART_INVALID_QUOTING
MULTIPART_NAME MULTIPART_FILENAME
MULTIPART_LF_LINE MULTIPART_MISSING_SEMICOLON MULTIPART_STRICT_ERROR
MULTIPART_UNMATCHED_BOUNDARY OUTBOUND_DATA_ERROR PATH_INFO QUERY_STRING REMOTE_ADDR
REMOTE_HOST REMOTE_PORT REMOTE_USER REQBODY_ERROR REQBODY_ERROR_MSG REQBODY_PROCESSOR
REQBODY_PROCESSOR_ERROR REQUEST_BASENAME REQUEST_BODY REQUEST_BODY_LENGTH
REQUEST_FILENAME REQUEST_LINE REQUEST_METHOD REQUEST_PROTOCOL REQUEST_URI REQUEST_URI_RAW
RESPONSE_BODY RESPONSE_CONTENT_LENGTH RESPONSE_CONTENT_TYPE RESPONSE_PROTOCOL
RESPONSE_STATUS SERVER_ADDR SERVER_NAME SERVER_PORT STATUS_LINE TIME TIME_DAY TIME_EPOCH
TIME_HOUR TIME_MIN TIME_MON TIME_SEC TIME_WDAY TIME_YEAR UNIQUE_ID URLENCODED_ERROR
WEBSERVER_ERROR_LOG REQBODY_PROCESSOR_ERROR_MSG MSC_PCRE_LIMITS_EXCEEDED
""".split())

KNOWN_VARIABLES = COLLECTIONS | SCALARS

# Targets whose values change between rules (never kept by ``Variables.values``).
# REQUEST_BODY is not one: it changes only when the body arrives, which drops every kept
# value (``ctl:forceRequestBodyVariable`` takes effect then, not before).
VOLATILE = frozenset(WRITABLE + (
    "MATCHED_VAR", "MATCHED_VARS", "MATCHED_VAR_NAME", "MATCHED_VARS_NAMES", "RULE",
    "DURATION", "TIME", "TIME_DAY", "TIME_EPOCH", "TIME_HOUR", "TIME_MIN", "TIME_MON",
    "TIME_SEC", "TIME_WDAY", "TIME_YEAR", "REQBODY_PROCESSOR", "HIGHEST_SEVERITY",
))
CACHED = "cached"
LIVE = "live"


class Target:
    """One rule target: ``name`` (upper-case), ``key`` (lower-case str or None), ``regex``
    (compiled, matched against the lower-cased key) and ``count`` (``&``)."""

    __slots__ = ("name", "key", "key_bytes", "regex", "count", "text", "raw_key", "keep")

    def __init__(self, name: str, key: Optional[str], regex: Optional["re.Pattern"],
                 count: bool, text: str, raw_key: Optional[str] = None) -> None:
        self.name = name
        self.key = key
        self.raw_key = raw_key if raw_key is not None else key
        self.key_bytes = key.encode("utf-8") if key is not None else None
        self.regex = regex
        self.count = count
        self.text = text
        self.keep = None  # variables.key_matcher(regex), made on first use

    def excludes(self, name: str, key_lower: bytes) -> bool:
        """Whether this (exclusion) target removes the value ``name:key``."""
        if self.name != name:
            return False
        if self.regex is not None:
            return self.regex.search(key_lower) is not None
        if self.key_bytes is None:
            return True
        return self.key_bytes == key_lower

    def read_kind(self):
        """How the evaluation loop reads this target: ``CACHED`` (values kept per
        transaction under the plan's key), ``(store, key, name)`` for ``TX:name`` and the
        other writable collections read by key, read live from the store; or ``LIVE``
        (computed on every read)."""
        if self.name in WRITABLE:
            if self.key is not None and self.regex is None and not self.count:
                return (self.name.lower(), self.key, self.name + ":" + self.key)
            return LIVE
        return LIVE if self.name in VOLATILE else CACHED

    def __repr__(self) -> str:
        return "Target(%s)" % self.text


def build_target(spec: VariableSpec, file: str, line: int) -> Target:
    """A Target from its parsed form; unknown variable -> SecLangError naming it."""
    if spec.name not in KNOWN_VARIABLES:
        raise SecLangError(file, line, "unknown variable %s" % spec.name)
    regex = None
    key = spec.key
    if spec.regex and key is not None:
        try:
            regex = re.compile(key.lower().encode("utf-8"), re.IGNORECASE)
        except re.error as exc:
            raise SecLangError(file, line, "bad regular expression key /%s/ of %s: %s"
                               % (key, spec.name, exc))
        key = None
    elif key is not None:
        key = key.lower()
    text = ("&" if spec.count else "") + ("!" if spec.exclude else "") + spec.name
    if spec.key is not None:
        text += ":" + (("/%s/" % spec.key) if spec.regex else spec.key)
    return Target(spec.name, key, regex, spec.count, text, spec.key)


def op_memoisable(argument: str) -> bool:
    """Whether an operator argument holds macros whose expansion can change during one
    rule's loop over its values only when a match runs the rule's effects: any variable
    but the clock's (``TIME*``, ``DURATION``). ``Evaluator._eval_general`` then expands it
    once per match instead of once per value."""
    if "%{" not in argument:
        return False
    parts = compile_macro(argument).parts
    refs = [p for p in parts if not isinstance(p, bytes)]
    return bool(refs) and not any(c.startswith("TIME") or c == "DURATION" for c, _ in refs)


# Transformation chains: every distinct prefix gets a small integer id so a transaction can
# cache (prefix id, value) -> result without hashing tuples of names on every lookup.
_prefix_ids: Dict[Tuple[str, ...], int] = {}


def prefix_ids(names: Sequence[str]) -> Tuple[int, ...]:
    out = []
    for i in range(len(names)):
        p = tuple(names[:i + 1])
        pid = _prefix_ids.get(p)
        if pid is None:
            pid = _prefix_ids[p] = len(_prefix_ids) + 1
        out.append(pid)
    return tuple(out)


class Rule:
    """A compiled rule (or SecAction, or SecMarker when ``marker`` is set).

    Fields set by ``actions.compile_actions``: metadata (``id``, ``phase``, ``msg``,
    ``logdata``, ``tags``, ``severity``...), ``disruptive`` (None, "pass", "deny", "drop",
    "redirect", "allow", "block"), ``status``, ``redirect``, ``allow_scope``, ``skip``,
    ``skip_after``, ``capture``, ``multi_match``, ``log``, ``auditlog``, ``chain`` (bool:
    a child follows) and ``effects`` (the non-disruptive actions to run per match, in order:
    setvar, setenv, ctl ...)."""

    __slots__ = (
        "id", "phase", "file", "line", "targets", "exclusions", "t_names", "t_funcs",
        "t_ids", "operator", "op_name", "op_arg", "negated", "msg", "logdata", "tags",
        "severity", "ver", "rev", "maturity", "accuracy", "disruptive", "status",
        "redirect", "allow_scope", "skip", "skip_after", "capture", "multi_match", "log",
        "auditlog", "chain", "child", "parent", "effects", "marker", "always", "raw_actions",
        "plan", "pre", "fast", "delta", "t_class", "t_runs", "op_memo", "op_batch",
        "cbit", "csrc", "hot", "replay", "chain_memo", "macro_known",
    )

    def __init__(self, file: str, line: int) -> None:
        self.id = 0
        self.phase = 2
        self.file = file
        self.line = line
        self.targets: List[Target] = []
        self.exclusions: List[Target] = []
        self.t_names: Tuple[str, ...] = ()
        self.t_funcs: Tuple[Callable[[bytes], bytes], ...] = ()
        self.t_ids: Tuple[int, ...] = ()
        self.t_class = identity.EMPTY  # identity.Class of the chain, or None
        self.t_runs: Tuple = ()  # identity.step_runs of the chain (multiMatch)
        self.operator = None
        self.op_name = ""
        self.op_arg = ""
        self.negated = False
        self.msg = None
        self.logdata = None
        self.tags: Tuple[str, ...] = ()
        self.severity = ""
        self.ver = ""
        self.rev = ""
        self.maturity = ""
        self.accuracy = ""
        self.disruptive: Optional[str] = None
        self.status = 0
        self.redirect = None
        self.allow_scope = ""
        self.skip = 0
        self.skip_after: Optional[str] = None
        self.capture = False
        self.multi_match = False
        self.log = True
        self.auditlog = True
        self.chain = False
        self.child: Optional[Rule] = None
        self.parent: Optional[Rule] = None
        self.effects: List = []
        self.marker: Optional[str] = None
        self.always = False  # SecAction: no targets, always matches
        self.raw_actions: List[Tuple[str, Optional[str]]] = []
        self.plan: Tuple = ()  # ((target, cache key, read kind), ...): set by ``finish``
        self.pre = None        # (prefilter.Group, index) when the rule is in an RE2 set
        self.fast = None       # fastpath.specialise's run(tx, detect), set by the WAF
        self.delta = None      # never set on a rule: delta.Delta has a true one
        self.op_memo = False   # the operator's argument holds a macro that may be memoised
        self.op_batch = None   # the operator's none_match(values): no value can match
        self.cbit = 0          # cleanskip.py: this pure rule's bit in its phase's plan
        self.csrc = ()         # cleanskip.py: the source index of each of its targets
        self.replay = None     # replay.Replay: per-value records of its matches' effects
        self.chain_memo = None  # chainmemo.ChainMemo: records of what the chain did
        # fold.py: the TX keys its operator's argument reads hold the same values for every
        # request where it runs (in the folded lists)
        self.macro_known = False
        # its first link matched the last time it ran: it does not ask the prefilter for a
        # scan (one already made still skips it); a hint shared by transactions, never a
        # verdict
        self.hot = False

    def finish(self) -> None:
        """Freeze the targets after every SecRuleUpdateTarget*: each with the text key the
        transaction caches its values under (the same text means the same values)."""
        excl = ",".join(x.text for x in self.exclusions)
        self.plan = tuple((t, t.text + "|" + excl, t.read_kind()) for t in self.targets)
        self.op_memo = op_memoisable(self.op_arg)
        self.op_batch = None if self.negated or self.multi_match else \
            getattr(self.operator, "none_match", None)

    def set_transforms(self, names: Sequence[str], table: Dict[str, Callable]) -> None:
        self.t_names = tuple(names)
        self.t_funcs = tuple(table[n] for n in names)
        self.t_ids = prefix_ids(self.t_names)
        self.t_class = identity.classify(self.t_names, self.t_funcs)
        self.t_runs = identity.step_runs(self.t_names, self.t_funcs)

    def chain_rules(self):
        """This rule and its chain children, in order."""
        r = self
        while r is not None:
            yield r
            r = r.child

    def __repr__(self) -> str:
        if self.marker is not None:
            return "<SecMarker %s>" % self.marker
        return "<Rule %d phase %d %s:%d>" % (self.id, self.phase, self.file, self.line)

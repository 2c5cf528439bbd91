"""SecLang operators: ``build_operator(name, argument, base_dir) -> Operator``.

An operator is ``op(value, expand) -> Match | None`` (see api.py). Arguments without a
macro (``%{...}``) are parsed and compiled here, once; arguments with one are expanded
with ``expand`` at each call (and, for @rx, compiled through a small bounded cache).
Negation is the engine's. Semantics follow ModSecurity v3 (numbers: a leading integer
as ``std::stoi`` reads it, anything else 0); docs/firewall-operators.md lists them.

Errors: ``UnsupportedOperator(name)`` for an operator we do not run (rbl, geoLookup,
inspectFile ...), ``OperatorError`` for a bad argument (an unreadable data file, a
pattern no engine compiles, a bad IP range). Both are ValueErrors; the engine turns
them into SecLangError with the file and line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

from . import libinjection
from .api import Match, Operator
from .phrases import PhraseMatcher
from .regex import Regex, RegexError, compile_rx

Expand = Callable[[str], bytes]


class OperatorError(ValueError):
    """An operator argument that cannot be used (the message says why)."""


class UnsupportedOperator(OperatorError):
    """An operator this engine does not implement."""

    def __init__(self, name: str):
        OperatorError.__init__(self, "unsupported operator @%s" % name)
        self.name = name


def _has_macro(argument: str) -> bool:
    return "%{" in argument


def _static_or_expanded(argument: str) -> Callable[[Expand], bytes]:
    """A function giving the argument's bytes: constant, or expanded per call."""
    if _has_macro(argument):
        return lambda expand: expand(argument)
    constant = argument.encode("utf-8")
    return lambda expand: constant


# --- string comparisons -------------------------------------------------------------

def _string_op(argument: str, test: Callable[[bytes, bytes], bool]) -> Operator:
    param = _static_or_expanded(argument)

    def op(value: bytes, expand: Expand) -> Optional[Match]:
        return Match(value) if test(value, param(expand)) else None
    return op


def _within(value: bytes, param: bytes) -> bool:
    return not value or value in param


def _contains_word(value: bytes, param: bytes) -> bool:
    if not param:
        return True
    if not value:
        return False
    pattern = b"(?<![0-9A-Za-z_])" + re.escape(param) + b"(?![0-9A-Za-z_])"
    return re.search(pattern, value) is not None


_STRING_TESTS: Dict[str, Callable[[bytes, bytes], bool]] = {
    "contains": lambda value, param: param in value,
    "strmatch": lambda value, param: param in value,
    "containsword": _contains_word,
    "streq": lambda value, param: value == param,
    "beginswith": lambda value, param: value.startswith(param),
    "endswith": lambda value, param: value.endswith(param),
    "within": _within,
}

# --- numbers ------------------------------------------------------------------------

_LEADING_INT = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def to_int(data: bytes) -> int:
    """std::stoi as ModSecurity uses it: the leading integer; non-numeric or out of the
    int range -> 0."""
    if data.isdigit():  # ASCII digits only: the common case (lengths, counts, scores)
        number = int(data)
        return number if number <= _INT_MAX else 0
    m = _LEADING_INT.match(data)
    if m is None:
        return 0
    number = int(m.group(1))
    return number if _INT_MIN <= number <= _INT_MAX else 0


_COMPARE: Dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}


def _numeric_op(argument: str, compare: Callable[[int, int], bool]) -> Operator:
    if _has_macro(argument):
        def op(value: bytes, expand: Expand) -> Optional[Match]:
            return Match(value) if compare(to_int(value), to_int(expand(argument))) else None
        return op
    constant = to_int(argument.encode("utf-8"))

    def static_op(value: bytes, expand: Expand) -> Optional[Match]:
        return Match(value) if compare(to_int(value), constant) else None
    return static_op


# --- regex and phrases --------------------------------------------------------------

_DYNAMIC_RX_CACHE = 256


def _rx(argument: str) -> Operator:
    if not _has_macro(argument):
        regex = compile_rx(argument)
        return _rx_with(lambda expand: regex)
    cache: "OrderedDict[bytes, Regex]" = OrderedDict()

    def regex_for(expand: Expand) -> Regex:
        text = expand(argument)
        regex = cache.get(text)
        if regex is None:
            regex = compile_rx(text.decode("utf-8", "surrogateescape"))
            cache[text] = regex
            if len(cache) > _DYNAMIC_RX_CACHE:
                cache.popitem(last=False)
        return regex
    return _rx_with(regex_for)


def _rx_with(regex_for: Callable[[Expand], Regex]) -> Operator:
    def op(value: bytes, expand: Expand) -> Optional[Match]:
        found = regex_for(expand).search(value)
        return Match(found[0], found[1]) if found is not None else None
    return op


def parse_pm_phrases(argument: str) -> List[bytes]:
    """@pm's phrases: whitespace-separated; ``|41 42|`` inside stands for hex bytes."""
    def unhex(m: "re.Match[bytes]") -> bytes:
        try:
            return bytes.fromhex(m.group(1).replace(b" ", b"").decode("ascii"))
        except ValueError:
            return m.group(0)
    return re.sub(rb"\|([0-9A-Fa-f ]*)\|", unhex, argument.encode("utf-8")).split()


def read_phrase_files(argument: str, base_dir: str) -> List[bytes]:
    """Phrases of @pmFromFile: one per line, ``#`` comments and blank lines skipped."""
    phrases: List[bytes] = []
    for name in argument.split():
        if "://" in name:
            raise OperatorError("@pmFromFile: remote data files are not supported: %s" % name)
        path = name if os.path.isabs(name) else os.path.join(base_dir, name)
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise OperatorError("@pmFromFile: cannot read %s: %s" % (path, e.strerror or e))
        for line in lines:
            line = line.strip()
            if line and not line.startswith(b"#"):
                phrases.append(line)
    return phrases


def _pm(phrases: List[bytes]) -> Operator:
    matcher = PhraseMatcher(phrases)

    def op(value: bytes, expand: Expand) -> Optional[Match]:
        phrase = matcher.search(value)
        return Match(phrase, (phrase,)) if phrase is not None else None
    op.phrases = tuple(matcher.by_lower)  # read by the prefilter (an RE2 alternation)
    return op


# --- validation ---------------------------------------------------------------------

def _byte_range(argument: str) -> Operator:
    allowed = bytearray()
    for part in argument.replace(",", " ").split():
        low, _, high = part.partition("-")
        try:
            start, end = int(low), int(high or low)
        except ValueError:
            raise OperatorError("@validateByteRange: %r is not a byte or a range" % part)
        if not 0 <= start <= end <= 255:
            raise OperatorError("@validateByteRange: %r is outside 0-255" % part)
        allowed.extend(range(start, end + 1))
    delete = bytes(allowed)

    def op(value: bytes, expand: Expand) -> Optional[Match]:
        return Match(value) if value.translate(None, delete) else None
    # (values) -> True when none matches: one translate over them all (Rule.op_batch)
    op.none_match = lambda values: not b"".join(values).translate(None, delete)
    return op


_BAD_PERCENT = re.compile(rb"%(?![0-9a-fA-F]{2})")


def _validate_url_encoding(value: bytes, expand: Expand) -> Optional[Match]:
    return Match(value) if _BAD_PERCENT.search(value) else None


def _validate_utf8(value: bytes, expand: Expand) -> Optional[Match]:
    if value.isascii():
        return None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return Match(value)
    return None


def _utf8_none_match(values: List[bytes]) -> bool:
    """Whether every value is valid UTF-8: their join with newlines is (an ASCII newline
    completes any character and continues none)."""
    joined = b"\n".join(values)
    if joined.isascii():
        return True
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_validate_utf8.none_match = _utf8_none_match  # type: ignore[attr-defined]


# --- IP addresses -------------------------------------------------------------------

def _networks(entries: List[str], what: str):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise OperatorError("%s: %r is not an IP address or CIDR range" % (what, entry))
    return networks


IP_MEMO_MAX = 4096  # addresses whose @ipMatch answer an operator remembers


def _ip_op(networks) -> Operator:
    """@ipMatch over ``networks``; the answer per address text is remembered (the same
    clients come back: parsing an address costs more than the rest), at most
    ``IP_MEMO_MAX`` of them, emptied when full."""
    v4 = tuple(n for n in networks if n.version == 4)
    v6 = tuple(n for n in networks if n.version == 6)
    memo: Dict[bytes, bool] = {}

    def within(value: bytes) -> bool:
        try:
            address = ipaddress.ip_address(value.decode("ascii").strip())
        except (ValueError, UnicodeDecodeError):
            return False
        return any(address in network for network in (v4 if address.version == 4 else v6))

    def op(value: bytes, expand: Expand) -> Optional[Match]:
        found = memo.get(value)
        if found is None:
            found = within(value)
            if len(value) <= 64:
                if len(memo) >= IP_MEMO_MAX:
                    memo.clear()
                memo[value] = found
        return Match(value) if found else None
    op.memo = memo  # (tests)
    return op


def _ip_match_from_file(argument: str, base_dir: str) -> Operator:
    path = argument if os.path.isabs(argument) else os.path.join(base_dir, argument)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise OperatorError("@ipMatchFromFile: cannot read %s: %s" % (path, e.strerror or e))
    return _ip_op(_networks([x for x in lines if x and not x.startswith("#")],
                            "@ipMatchFromFile %s" % path))


# --- libinjection, constants --------------------------------------------------------

def _detect_sqli(value: bytes, expand: Expand) -> Optional[Match]:
    found, fingerprint = libinjection.is_sqli(value)
    return Match(value, (fingerprint,)) if found else None


def _detect_xss(value: bytes, expand: Expand) -> Optional[Match]:
    return Match(value) if libinjection.is_xss(value) else None


def _unconditional(value: bytes, expand: Expand) -> Optional[Match]:
    return Match(value)


def _no_match(value: bytes, expand: Expand) -> Optional[Match]:
    return None


UNSUPPORTED = frozenset((
    "rbl", "geolookup", "inspectfile", "validatenid", "validateschema", "validatedtd",
    "verifycc", "verifycpf", "verifyssn", "fuzzyhash", "gsblookup", "pmfromdataset",
    "ipmatchfromdataset", "restpath", "validatehash"))


def build_operator(name: str, argument: str, base_dir: str) -> Operator:
    """The operator ``@name argument``; data files are relative to ``base_dir``."""
    key = name.lower()
    argument = argument.strip()
    if key == "rx":
        try:
            return _rx(argument)
        except RegexError as e:
            raise OperatorError("@rx: %s" % e)
    if key == "pm":
        return _pm(parse_pm_phrases(argument))
    if key in ("pmf", "pmfromfile"):
        return _pm(read_phrase_files(argument, base_dir))
    if key in _STRING_TESTS:
        return _string_op(argument, _STRING_TESTS[key])
    if key in _COMPARE:
        return _numeric_op(argument, _COMPARE[key])
    if key == "validatebyterange":
        return _byte_range(argument)
    if key == "ipmatch":
        return _ip_op(_networks([x.strip() for x in argument.split(",") if x.strip()],
                                "@ipMatch"))
    if key in ("ipmatchfromfile", "ipmatchf"):
        return _ip_match_from_file(argument, base_dir)
    simple = {
        "detectsqli": _detect_sqli, "detectxss": _detect_xss,
        "validateurlencoding": _validate_url_encoding,
        "validateutf8encoding": _validate_utf8,
        "unconditionalmatch": _unconditional, "nomatch": _no_match,
    }.get(key)
    if simple is not None:
        return simple
    raise UnsupportedOperator(name)

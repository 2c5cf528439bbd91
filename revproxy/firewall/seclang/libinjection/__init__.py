"""libinjection for @detectSQLi / @detectXSS: ``is_sqli(data) -> (bool, fingerprint)``
and ``is_xss(data) -> bool``.

Two implementations with one behaviour (libinjection 3.9.2, the version ModSecurity v3
bundles): the C library through the ``libinjection-python`` binding when it imports
(CPython; an optional extra, GPL-licensed wrapper around the BSD C code), and a
pure-Python port (``_sqli``, ``_xss``) everywhere else, PyPy included. The binding takes
``str`` and encodes it as UTF-8, so input that is not valid UTF-8 always goes to the port.
``IMPLEMENTATION`` says which one serves valid UTF-8: "native" or "python".

Verdicts on short inputs (at most ``MEMO_MAX_INPUT`` bytes: argument names, cookie and
header values, most form fields) are memoised process-wide, at most ``MEMO_MAX_ENTRIES``
per detector (the memo is emptied when full), so the memo holds a bounded number of
attacker bytes (about 4096 x 256 = 1 MiB per detector).
"""

from __future__ import annotations

from typing import Dict, Tuple

from . import _sqli, _xss

python_is_sqli = _sqli.is_sqli
python_is_xss = _xss.is_xss

try:  # pragma: no cover - depends on the interpreter
    import libinjection as _native  # the libinjection-python binding

    _native_sqli = _native.is_sql_injection
    _native_xss = _native.is_xss
    IMPLEMENTATION = "native"
except (ImportError, AttributeError):
    _native = None
    IMPLEMENTATION = "python"


def native_is_sqli(data: bytes) -> Tuple[bool, bytes]:
    """The C library's verdict (only for valid UTF-8 ``data``; needs the binding)."""
    result = _native_sqli(data.decode("utf-8"))
    if result["is_sqli"]:
        return True, result["fingerprint"].encode("ascii")
    return False, b""


def native_is_xss(data: bytes) -> bool:
    """The C library's verdict (only for valid UTF-8 ``data``; needs the binding)."""
    return bool(_native_xss(data.decode("utf-8"))["is_xss"])


MEMO_MAX_INPUT = 256
MEMO_MAX_ENTRIES = 4096
_sqli_memo: Dict[bytes, Tuple[bool, bytes]] = {}
_xss_memo: Dict[bytes, bool] = {}


def clear_memo() -> None:
    """Forget every memoised verdict."""
    _sqli_memo.clear()
    _xss_memo.clear()


def is_sqli(data: bytes) -> Tuple[bool, bytes]:
    """(True, fingerprint such as b"s&sos") when ``data`` is SQL injection, else
    (False, b"")."""
    if len(data) > MEMO_MAX_INPUT:
        return _is_sqli(data)
    r = _sqli_memo.get(data)
    if r is None:
        r = _is_sqli(data)
        if len(_sqli_memo) >= MEMO_MAX_ENTRIES:
            _sqli_memo.clear()
        _sqli_memo[data] = r
    return r


def is_xss(data: bytes) -> bool:
    """True when ``data`` holds an XSS vector (in text or in an HTML attribute)."""
    if len(data) > MEMO_MAX_INPUT:
        return _is_xss(data)
    r = _xss_memo.get(data)
    if r is None:
        r = _is_xss(data)
        if len(_xss_memo) >= MEMO_MAX_ENTRIES:
            _xss_memo.clear()
        _xss_memo[data] = r
    return r


def _is_sqli(data: bytes) -> Tuple[bool, bytes]:
    if _native is not None:
        try:
            return native_is_sqli(data)
        except UnicodeDecodeError:
            pass
    return python_is_sqli(data)


def _is_xss(data: bytes) -> bool:
    if _native is not None:
        try:
            return native_is_xss(data)
        except UnicodeDecodeError:
            pass
    return python_is_xss(data)

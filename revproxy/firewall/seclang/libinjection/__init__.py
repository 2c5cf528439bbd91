"""libinjection for @detectSQLi / @detectXSS: ``is_sqli(data) -> (bool, fingerprint)``
and ``is_xss(data) -> bool``.

Two implementations with one behaviour (libinjection 3.9.2, the version ModSecurity v3
bundles): the C library, built by setup.py as the optional extension ``_native`` from
``csrc/`` (CPython; libinjection's BSD-licensed source and a 70-line wrapper of ours), and a
pure-Python port (``_sqli``, ``_xss``) wherever the extension was not built: PyPy, or an
install without a C compiler. Both take the value's bytes as they are (NULs and bytes that
are not UTF-8 included), as ModSecurity passes them. ``IMPLEMENTATION`` says which one
serves: "native" or "python".

Verdicts on short inputs (at most ``MEMO_MAX_INPUT`` bytes: argument names, cookie and
header values, most form fields) are memoised process-wide, at most ``MEMO_MAX_ENTRIES``
per detector (the memo is emptied when full), so the memo holds a bounded number of
attacker bytes (about 4096 x 256 = 1 MiB per detector).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from . import _sqli, _xss

python_is_sqli = _sqli.is_sqli
python_is_xss = _xss.is_xss

try:  # pragma: no cover - depends on the build
    from . import _native as native
    IMPLEMENTATION = "native"
except ImportError:
    native = None
    IMPLEMENTATION = "python"


def native_is_sqli(data: bytes) -> Tuple[bool, bytes]:
    """The C library's verdict (needs the extension)."""
    fingerprint: Optional[bytes] = native.sqli(data)
    return (True, fingerprint) if fingerprint is not None else (False, b"")


def native_is_xss(data: bytes) -> bool:
    """The C library's verdict (needs the extension)."""
    return native.xss(data)


_is_sqli = native_is_sqli if native is not None else python_is_sqli
_is_xss = native_is_xss if native is not None else python_is_xss


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

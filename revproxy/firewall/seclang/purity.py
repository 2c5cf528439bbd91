"""Which rule links are *pure*: whether one matches a value is a function of the value.

A link is pure when it reads only request or response collections (``ARGS``,
``REQUEST_HEADERS:User-Agent``, ``REQUEST_COOKIES_NAMES`` ...), ``XML:``, counts of those
(``&REQUEST_HEADERS:Host``: no ``!`` exclusion of the counted collection, no regex key) or
scalars that cannot change while a phase runs (``PURE_SCALARS``: the request line's, the
response's, and what the body's intake set before phase 2), never TX, another writable
collection or ``MATCHED_*``; and runs a shipped operator whose argument holds no macro, or
only macros reading TX keys fold.py knows at the link's position (``Rule.macro_known``).
Transformations are functions, the operator reads nothing but its argument, and ``!``
exclusions are fixed at load: whether the link matches one value depends on the value and
its key alone. cleanskip.py records which values pure links were seen not to match,
replay.py what their matches do, chainmemo.py what whole chains starting with one do.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from . import emptyskip
from .emptyskip import _COUNT
from .variables import _COLLECTION_NAMES

# operators whose outcome depends only on the value and their argument (shipped ones)
PURE_OPS = frozenset((
    "rx", "pm", "pmf", "pmfromfile", "streq", "contains", "containsword", "beginswith",
    "endswith", "within", "strmatch", "eq", "ge", "gt", "le", "lt", "detectsqli",
    "detectxss", "validatebyterange", "validateurlencoding", "validateutf8encoding",
    "ipmatch", "ipmatchfromfile", "ipmatchf", "unconditionalmatch", "nomatch"))

# scalars that cannot change while a phase runs
PURE_SCALARS = frozenset((
    "REQUEST_METHOD", "REQUEST_PROTOCOL", "REQUEST_URI_RAW", "REQUEST_URI",
    "REQUEST_FILENAME", "REQUEST_BASENAME", "QUERY_STRING", "REQUEST_LINE", "PATH_INFO",
    "REMOTE_ADDR", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REQUEST_BODY",
    "RESPONSE_BODY", "RESPONSE_STATUS", "RESPONSE_PROTOCOL", "STATUS_LINE",
    "RESPONSE_CONTENT_TYPE", "RESPONSE_CONTENT_LENGTH",
    # what the body's intake set before phase 2 (not the MULTIPART_* flags nor
    # REQBODY_PROCESSOR, which a ctl:requestBodyProcessor in the phase changes)
    "REQBODY_ERROR", "REQBODY_PROCESSOR_ERROR", "REQUEST_BODY_LENGTH", "URLENCODED_ERROR",
    "INBOUND_DATA_ERROR"))


def pure_sources(rule, default_ops: bool) -> Optional[List[Tuple[int, str, Optional[bytes]]]]:
    """The sources of the link ``rule`` (a rule's first link, or a later one that stops its
    chain: ``emptyskip.stop_links``) when it is pure (module doc), else None: one source
    per target, ``(kind, name, key)`` as ``emptyskip.target_sources`` gives them, or
    ``(_COUNT, name, key)`` for a count."""
    if not default_ops or rule.marker is not None or rule.delta is not None \
            or rule.always or not rule.targets \
            or rule.fast is not None and not getattr(rule.fast, "pure", False):
        return None
    if rule.op_name.lower() not in PURE_OPS or "%{" in rule.op_arg and not rule.macro_known:
        return None  # (macro_known: what the argument reads is the same everywhere, fold.py)
    counted = {t.name for t in rule.targets if t.count}
    if not counted:
        return emptyskip.target_sources(rule.targets, PURE_SCALARS)
    if any(x.name in counted for x in rule.exclusions):
        return None  # (a count without the excluded keys: not the source's count)
    out = []
    for t in rule.targets:
        if t.count:
            if t.name not in _COLLECTION_NAMES or t.regex is not None:
                return None
            out.append((_COUNT, t.name, t.key_bytes if t.key is not None else None))
            continue
        got = emptyskip.target_sources([t], PURE_SCALARS)
        if got is None:
            return None
        out.extend(got)
    return out

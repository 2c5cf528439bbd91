"""The kinds of atoms (atoms.py) and the collections and scalars each feeds: a request
header, a response header, the request line (its query), the Cookie values, the body;
the scalars that are functions of the request line or of the body atom; the collections
that are always empty. Tables read at load, when atoms.py works out a Plan's atoms."""

from __future__ import annotations

from typing import Dict

LINE_SCALARS = frozenset((  # functions of (method, target, protocol), never None
    "REQUEST_METHOD", "REQUEST_PROTOCOL", "REQUEST_URI_RAW", "REQUEST_URI",
    "REQUEST_FILENAME", "REQUEST_BASENAME", "QUERY_STRING", "REQUEST_LINE", "PATH_INFO"))
ALWAYS_EMPTY = frozenset(("FILES_TMPNAMES", "FILES_TMP_CONTENT", "GEO"))
# functions of what the body atom holds (the processor the intake parsed with, the
# Content-Type, the bytes taken, whether REQUEST_BODY is populated, the truncation)
BODY_SCALARS = frozenset(("REQUEST_BODY", "REQUEST_BODY_LENGTH", "REQBODY_ERROR",
                          "REQBODY_PROCESSOR_ERROR", "URLENCODED_ERROR",
                          "INBOUND_DATA_ERROR"))

# collection -> (kind of atom feeding it, part): HDR/RHDR per header, LINE the query,
# COOKIE, BODY; ARGS and ARGS_NAMES are fed by LINE and BODY both
HDR, RHDR, LINE, COOKIE, BODY = range(5)
KINDS = {
    "REQUEST_HEADERS": (HDR,), "REQUEST_HEADERS_NAMES": (HDR,),
    "RESPONSE_HEADERS": (RHDR,), "RESPONSE_HEADERS_NAMES": (RHDR,),
    "ARGS_GET": (LINE,), "ARGS_GET_NAMES": (LINE,),
    "ARGS": (LINE, BODY), "ARGS_NAMES": (LINE, BODY),
    "REQUEST_COOKIES": (COOKIE,), "REQUEST_COOKIES_NAMES": (COOKIE,),
    "ARGS_POST": (BODY,), "ARGS_POST_NAMES": (BODY,),
    "FILES": (BODY,), "FILES_NAMES": (BODY,), "FILES_SIZES": (BODY,),
    "MULTIPART_PART_HEADERS": (BODY,),
}


class Feeds:
    """Per collection group: the bits of its whole-collection sources and, per lower-case
    key, of its keyed ones (a collection and its ``_NAMES`` share the keys)."""

    __slots__ = ("whole", "keyed")

    def __init__(self) -> None:
        self.whole = 0
        self.keyed: Dict[bytes, int] = {}

    def of(self, key: bytes) -> int:
        return self.whole | self.keyed.get(key.lower(), 0)

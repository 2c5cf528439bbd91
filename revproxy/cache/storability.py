"""May a response be stored? (RFC 9111 §3, §3.5, §5.2.2.3, RFC 9110 §15.)

Policy where the RFC leaves latitude (each refusal returns a reason naming it):

* Only responses to **GET** are stored. A HEAD is answered from a stored GET response (RFC
  9110 §9.3.2 makes them the same representation); a HEAD response is never stored. POST
  responses (cacheable only with explicit freshness and Content-Location, §9.3.3) are not.
* **206** is never stored (no partial-content support) and neither is **304** (it only updates a
  stored response, §4.3.4).
* ``must-understand`` (§5.2.2.3): stored only when the status is in ``UNDERSTOOD_STATUSES``, and
  then a ``no-store`` next to it is ignored, as the RFC says.
* ``private`` makes a response unstorable in a shared cache; a qualified ``private="field"``
  does not: the response is stored without the listed fields (§5.2.2.7; the engine removes
  them, ``private_fields``). A malformed qualified member reads as unqualified.
* ``Authorization`` in the request: stored only with ``public``, ``s-maxage`` or
  ``must-revalidate`` (§3.5).
* A response that says nothing is **not** stored: without explicit freshness (``public``,
  ``Expires``, ``max-age``, ``s-maxage``) it needs a heuristically cacheable status *and* a
  validator (``Last-Modified`` gives heuristic freshness; an ``ETag`` alone gives a response
  that is stored only to be revalidated). The RFC would store any heuristically cacheable
  status; one without a validator would be useless (always stale, never revalidated).
* ``Set-Cookie`` (shared cache): stored only with ``public`` or ``s-maxage`` unless the caller
  passes ``allow_set_cookie=True``. RFC 9111 §7.3 lets caches store it; serving one user's cookie
  to another on a bare ``max-age`` is the classic leak, so we want an explicit shared opt-in.
* ``Vary: *`` is not stored: no later request can ever match it (§4.1).
"""

from __future__ import annotations

from typing import Sequence, Tuple

from revproxy.cache.directives import (
    CacheControl, get_field, parse_cache_control, qualified_fields, unqualified,
)
from revproxy.cache.vary import vary_names

Headers = Sequence[Tuple[bytes, bytes]]

# RFC 9111 §4.2.2 / RFC 9110 §15.1: "heuristically cacheable by default"
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Statuses whose caching requirements we implement (for must-understand): 206 and 304 excluded.
UNDERSTOOD_STATUSES = frozenset(
    {200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501})


def storable(method: bytes, status: int, request_headers: Headers, response_headers: Headers,
             *, shared: bool = True, allow_heuristic: bool = True,
             allow_set_cookie: bool = False) -> Tuple[bool, str]:
    """``(True, "...")`` when this response may be stored, else ``(False, reason)``."""
    if method != b"GET":
        return False, "method: only GET responses are stored (HEAD is served from a stored GET)"
    if status < 200:
        return False, "status %d is not final" % status
    if status in (206, 304):
        return False, "status %d is never stored (no partial content; 304 only updates)" % status
    if "no-store" in parse_cache_control(get_field(request_headers, b"cache-control")):
        return False, "request no-store"
    cc = parse_cache_control(get_field(response_headers, b"cache-control"))
    refusal = _directive_refusal(status, cc, request_headers, shared)
    if refusal:
        return False, refusal
    if vary_names(response_headers) is None:
        return False, "Vary: * never matches a later request"
    return _enough_to_store(status, cc, response_headers, shared, allow_heuristic,
                            allow_set_cookie)


def _directive_refusal(status: int, cc: CacheControl, request_headers: Headers,
                       shared: bool) -> str:
    must_understand = "must-understand" in cc
    if must_understand and status not in UNDERSTOOD_STATUSES:
        return "must-understand with status %d, which we do not implement" % status
    if "no-store" in cc and not must_understand:
        return "response no-store"
    if shared and unqualified(cc, "private"):
        return "response private (shared cache)"
    if shared and get_field(request_headers, b"authorization"):
        if not ("public" in cc or "s-maxage" in cc or "must-revalidate" in cc):
            return "request Authorization without public, s-maxage or must-revalidate"
    return ""


def _enough_to_store(status: int, cc: CacheControl, response_headers: Headers, shared: bool,
                     allow_heuristic: bool, allow_set_cookie: bool) -> Tuple[bool, str]:
    if shared and not allow_set_cookie and get_field(response_headers, b"set-cookie"):
        # a qualified private/no-cache naming Set-Cookie keeps it out of every hit already
        withheld = (qualified_fields(cc, "private") or frozenset()) | (
            qualified_fields(cc, "no-cache") or frozenset())
        if "public" not in cc and "s-maxage" not in cc and b"set-cookie" not in withheld:
            return False, "Set-Cookie without public or s-maxage"
    if "public" in cc:
        return True, "public"
    if "max-age" in cc or (shared and "s-maxage" in cc):
        return True, "explicit freshness (max-age/s-maxage)"
    if get_field(response_headers, b"expires"):
        return True, "explicit freshness (Expires)"
    if not shared and "private" in cc:
        return True, "private (private cache)"
    # (a qualified private="f" alone grants no freshness: the rules below decide)
    if not allow_heuristic or status not in HEURISTIC_STATUSES:
        return False, "no explicit freshness and status %d is not heuristically cached" % status
    if get_field(response_headers, b"last-modified"):
        return True, "heuristically cacheable status with Last-Modified"
    if get_field(response_headers, b"etag"):
        return True, "heuristically cacheable status with ETag (stored for revalidation)"
    return False, "no explicit freshness and no validator"


def private_fields(response_headers: Headers) -> frozenset:
    """The fields a qualified ``private="..."`` keeps out of a shared cache (§5.2.2.7)."""
    cc = parse_cache_control(get_field(response_headers, b"cache-control"))
    return qualified_fields(cc, "private") or frozenset()


def no_cache_fields(response_headers: Headers) -> frozenset:
    """The fields a qualified ``no-cache="..."`` keeps out of unvalidated hits (§5.2.2.4)."""
    cc = parse_cache_control(get_field(response_headers, b"cache-control"))
    return qualified_fields(cc, "no-cache") or frozenset()

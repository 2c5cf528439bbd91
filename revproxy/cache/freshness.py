"""Freshness (RFC 9111 §4.2), reuse decisions (§4, §5.2) and stale serving (RFC 5861).

Times are epoch seconds (floats) passed in by the caller: ``request_time`` when the request
that produced the stored response was sent, ``response_time`` when its response arrived,
``now`` the present. Nothing here reads a clock.

Choices where the RFCs leave latitude:

* Duplicates (two ``Expires``, two ``Date``, ``Age: 10, 20``): the first value is used.
* An unparseable ``Age`` is ignored (§4.2.3: "0, if not available"); ``Date`` missing or
  invalid reads as ``response_time`` (RFC 9110 §6.6.1 has the recipient supply one).
* Heuristic freshness (§4.2.2) is ``heuristic_fraction`` of ``Date - Last-Modified`` capped at
  ``heuristic_max``, for ``HEURISTIC_STATUSES`` or a ``public`` response (§5.2.2.9), and only
  when there is no explicit freshness at all (an invalid one means stale, not heuristic).
* Qualified ``no-cache="field"`` (§5.2.2.4) does not make the response revalidate: the
  listed fields are left out of every answer from the cache that was not just revalidated
  (``server/cacheserve.py``); a malformed qualified member reads as unqualified.
* Request ``no-store`` gives ``"bypass"``: RFC 9111 §5.2.1.5 would allow answering from a stored
  response, but a client saying no-store wants nothing kept or replayed.
* Invalid request delta-seconds: ``max-age`` reads as 0 (revalidate), ``max-stale`` and
  ``min-fresh`` are ignored - the restrictive reading each time.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

from revproxy.cache.dates import parse_http_date
from revproxy.cache.directives import (
    CacheControl, delta_seconds, first_field, get_field, parse_cache_control, unqualified,
)
from revproxy.cache.storability import HEURISTIC_STATUSES, UNDERSTOOD_STATUSES, storable

__all__ = [
    "HEURISTIC_STATUSES", "UNDERSTOOD_STATUSES", "KINDS", "Decision", "current_age", "evaluate",
    "forbids_stale", "freshness_lifetime", "request_no_cache", "stale_if_error",
    "stale_while_revalidate", "storable", "within_sie", "within_swr",
]

Headers = Sequence[Tuple[bytes, bytes]]

KINDS = ("fresh", "stale-ok", "revalidate", "must-revalidate", "bypass")


class Decision(NamedTuple):
    """What to do with a stored response for a new request.

    ``kind``: ``fresh`` (serve it), ``stale-ok`` (serve it: the client's max-stale allows),
    ``revalidate`` (send a conditional request; on an origin error it may still be served if
    ``within_sie``; while ``within_swr`` it may be served at once and revalidated in the
    background), ``must-revalidate`` (send a conditional request; on failure answer 504,
    never the stored response), ``bypass`` (forward, do not store the answer).
    ``ttl`` is ``lifetime - age`` (negative when stale). ``by_request``: the request's own
    directives (no-cache, max-age, min-fresh) asked for validation. ``only_if_cached``: the
    caller answers 504 unless ``kind`` is ``fresh`` or ``stale-ok`` (§5.2.1.7).
    """

    kind: str
    age: float
    ttl: float
    lifetime: float
    heuristic: bool
    by_request: bool
    only_if_cached: bool
    reason: str

    @property
    def usable(self) -> bool:
        """The stored response can be sent without contacting the origin."""
        return self.kind == "fresh" or self.kind == "stale-ok"


def freshness_lifetime(status: int, response_headers: Headers, *, shared: bool = True,
                       heuristic_fraction: float = 0.1, heuristic_max: float = 86400.0,
                       response_time: Optional[float] = None,
                       cc: Optional[CacheControl] = None) -> Tuple[float, bool]:
    """``(seconds, heuristic)`` per §4.2.1: ``s-maxage`` (shared), ``max-age``, ``Expires -
    Date``, else the heuristic (§4.2.2), else 0. An invalid value gives 0 (stale); an invalid
    Expires is "already expired" (§5.3). Without ``Date`` (or ``response_time``) an Expires
    lifetime cannot be computed and is 0."""
    if cc is None:
        cc = parse_cache_control(get_field(response_headers, b"cache-control"))
    explicit = cc.seconds("s-maxage") if shared else None
    if explicit is None:
        explicit = cc.seconds("max-age")
    if explicit is not None:
        return float(max(explicit, 0)), False
    expires = first_field(response_headers, b"expires")
    date = _date_value(response_headers, response_time)
    if expires is not None:
        expires_at = parse_http_date(expires, now=response_time)
        if expires_at is None or date is None:
            return 0.0, False
        return max(0.0, expires_at - date), False
    if status not in HEURISTIC_STATUSES and "public" not in cc:
        return 0.0, False
    last_modified = parse_http_date(first_field(response_headers, b"last-modified"),
                                    now=response_time)
    if last_modified is None or date is None:
        return 0.0, False
    lifetime = max(0.0, date - last_modified) * heuristic_fraction
    return min(lifetime, heuristic_max), True


def current_age(response_headers: Headers, request_time: float, response_time: float,
                now: float) -> float:
    """The stored response's age per §4.2.3; never negative, whatever the clocks say."""
    date = _date_value(response_headers, response_time)
    apparent_age = max(0.0, response_time - date)
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = _age_value(response_headers) + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = max(0.0, now - response_time)
    return corrected_initial_age + resident_time


def _date_value(headers: Headers, response_time: Optional[float]) -> Optional[float]:
    date = parse_http_date(first_field(headers, b"date"), now=response_time)
    return response_time if date is None else date


def _age_value(headers: Headers) -> float:
    value = first_field(headers, b"age")
    if value is None:
        return 0.0
    seconds = delta_seconds(value.split(b",", 1)[0].strip(b" \t"))
    return 0.0 if seconds is None else float(seconds)


def forbids_stale(cc: CacheControl, shared: bool = True) -> bool:
    """The response may never be served stale without validation (§4.2.4): ``no-cache``,
    ``must-revalidate``; for a shared cache also ``proxy-revalidate`` and ``s-maxage``
    (§5.2.2.10: it implies proxy-revalidate)."""
    if "must-revalidate" in cc or unqualified(cc, "no-cache"):
        return True
    return shared and ("proxy-revalidate" in cc or "s-maxage" in cc)


def request_no_cache(request_headers: Headers, req_cc: Optional[CacheControl] = None) -> bool:
    """``Cache-Control: no-cache``, or ``Pragma: no-cache`` when the request has no
    Cache-Control field at all (RFC 9111 §5.4)."""
    if req_cc is None:
        req_cc = parse_cache_control(get_field(request_headers, b"cache-control"))
    if "no-cache" in req_cc:
        return True
    if get_field(request_headers, b"cache-control"):
        return False
    for value in get_field(request_headers, b"pragma"):
        if b"no-cache" in (member.strip(b" \t").lower() for member in value.split(b",")):
            return True
    return False


def evaluate(stored_headers: Headers, stored_status: int, request_time: float,
             response_time: float, request_headers: Headers, now: float, *,
             shared: bool = True, heuristic_fraction: float = 0.1,
             heuristic_max: float = 86400.0) -> Decision:
    """Decide how the stored response may answer a request carrying ``request_headers``."""
    req_cc = parse_cache_control(get_field(request_headers, b"cache-control"))
    cc = parse_cache_control(get_field(stored_headers, b"cache-control"))
    lifetime, heuristic = freshness_lifetime(
        stored_status, stored_headers, shared=shared, heuristic_fraction=heuristic_fraction,
        heuristic_max=heuristic_max, response_time=response_time, cc=cc)
    age = current_age(stored_headers, request_time, response_time, now)
    ttl = lifetime - age
    only = "only-if-cached" in req_cc

    def decide(kind: str, reason: str, by_request: bool = False) -> Decision:
        return Decision(kind, age, ttl, lifetime, heuristic, by_request, only, reason)

    if "no-store" in req_cc:
        return decide("bypass", "request no-store")
    if unqualified(cc, "no-cache"):
        return decide("must-revalidate", "response no-cache")
    stale_forbidden = forbids_stale(cc, shared)
    revalidate = "must-revalidate" if ttl <= 0 and stale_forbidden else "revalidate"
    if request_no_cache(request_headers, req_cc):
        return decide(revalidate, "request no-cache", True)
    max_age = req_cc.seconds("max-age")
    if max_age is not None and age > max(max_age, 0):
        return decide(revalidate, "age exceeds request max-age", True)
    if ttl > 0:
        min_fresh = req_cc.seconds("min-fresh")
        if min_fresh is not None and ttl < min_fresh:
            return decide("revalidate", "fresh for less than request min-fresh", True)
        return decide("fresh", "heuristically fresh" if heuristic else "fresh")
    if stale_forbidden:
        return decide("must-revalidate", "stale; the response forbids serving it stale")
    if _max_stale_allows(req_cc, -ttl):
        return decide("stale-ok", "stale within request max-stale")
    return decide("revalidate", "stale")


def _max_stale_allows(req_cc: CacheControl, staleness: float) -> bool:
    if "max-stale" not in req_cc:
        return False
    if req_cc["max-stale"] is None and "max-stale" not in req_cc.malformed:
        return True  # no argument: any staleness (§5.2.1.2)
    limit = req_cc.seconds("max-stale")
    return limit is not None and limit >= 0 and staleness <= limit


def stale_while_revalidate(stored_headers: Headers, *, shared: bool = True,
                           default: float = 0) -> float:
    """The response's ``stale-while-revalidate`` window (RFC 5861 §3), 0 when invalid or
    overridden by a directive forbidding stale responses; ``default`` (the proxy's own
    setting) when the response does not say."""
    cc = parse_cache_control(get_field(stored_headers, b"cache-control"))
    return _window(cc, "stale-while-revalidate", shared, default)


def stale_if_error(stored_headers: Headers, request_headers: Headers = (), *,
                   shared: bool = True, default: float = 0) -> float:
    """The larger ``stale-if-error`` window of the response and of the request (RFC 5861 §4
    allows it in both), 0 when the response forbids stale serving; the response's window is
    ``default`` when it does not say."""
    cc = parse_cache_control(get_field(stored_headers, b"cache-control"))
    if forbids_stale(cc, shared):
        return 0
    req_cc = parse_cache_control(get_field(request_headers, b"cache-control"))
    return max(_window(cc, "stale-if-error", shared, default),
               _window(req_cc, "stale-if-error", shared))


def _window(cc: CacheControl, name: str, shared: bool, default: float = 0) -> float:
    if forbids_stale(cc, shared):
        return 0
    value = cc.seconds(name)
    if value is None:
        return default if name not in cc else 0
    return value if value > 0 else 0


def within_swr(decision: Decision, stored_headers: Headers, *, shared: bool = True,
               default: float = 0) -> bool:
    """Serve the stale response now and revalidate in the background (RFC 5861 §3)? Only for
    a plain ``revalidate`` of a stale response that the request itself did not force."""
    if decision.kind != "revalidate" or decision.by_request or decision.ttl > 0:
        return False
    window = stale_while_revalidate(stored_headers, shared=shared, default=default)
    return window > 0 and -decision.ttl <= window


def within_sie(decision: Decision, stored_headers: Headers, request_headers: Headers = (), *,
               shared: bool = True, default: float = 0) -> bool:
    """May the stored response replace an origin error (5xx, connect failure, RFC 5861 §4)?
    Always for ``fresh``/``stale-ok``; never for ``bypass``/``must-revalidate``; for
    ``revalidate`` when still fresh or stale by no more than the stale-if-error window."""
    if decision.usable:
        return True
    if decision.kind != "revalidate":
        return False
    if decision.ttl > 0:
        return True
    window = stale_if_error(stored_headers, request_headers, shared=shared, default=default)
    return window > 0 and -decision.ttl <= window

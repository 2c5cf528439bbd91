"""Pure decisions around one request's member: retries, sticky sessions, the decision header."""

from __future__ import annotations

from revproxy.upstream import errors

IDEMPOTENT = frozenset([b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"])

_KIND_TO_RETRY_ON = {
    errors.CONNECT_FAILED: "connect-failure",
    errors.CONNECT_TIMEOUT: "connect-failure",
    errors.FIRST_BYTE_TIMEOUT: "timeout",
    errors.READ_TIMEOUT: "timeout",
    errors.CLOSED: "connect-failure",  # closed before a byte of response: see reached_backend
}
NOT_SENT = frozenset([errors.CONNECT_FAILED, errors.CONNECT_TIMEOUT])


def retry_reason(error=None, status=None):
    """The ``retry_on`` word for a failure or a response status, or None."""
    if status is not None:
        return str(status)
    return _KIND_TO_RETRY_ON.get(error.kind)


def may_retry(reason, reached_backend, method, body_consumed, attempts, pool_config):
    """Whether another member may get the request (before the retry budget is asked).

    A request that may have reached a backend is retried only when idempotent and its body
    can be sent again; one that never left the proxy (connect failure) may always move."""
    if reason is None or reason not in pool_config.retry_on:
        return False
    if attempts > pool_config.retries:
        return False
    if reached_backend and (method not in IDEMPOTENT or body_consumed):
        return False
    return True


def sticky_member(pool, facts, candidates_now):
    """The candidate the request's sticky cookie names, or None."""
    name = pool.config.sticky_cookie
    if not name:
        return None
    token = facts.cookie(name.encode("ascii"))
    if token is None:
        return None
    for member in candidates_now:
        if member.token == token:
            return member
    return None


def sticky_set_cookie(pool, facts, member):
    """A Set-Cookie header pinning the client to ``member``, or None when already pinned."""
    name = pool.config.sticky_cookie
    if not name:
        return None
    cookie_name = name.encode("ascii")
    if facts.cookie(cookie_name) == member.token:
        return None
    return (b"set-cookie", b"%s=%s; Path=/; HttpOnly; SameSite=Lax" % (cookie_name, member.token))


def decision_header(route, pool, member, attempts, why) -> bytes:
    """``x-revproxy-decision``: which route, pool and member served the request, and why."""
    text = "route=%s pool=%s member=%s attempts=%d" % (
        route.name, pool.name, member.name if member is not None else "-", attempts)
    if why:
        text += " why=" + why
    return text.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")

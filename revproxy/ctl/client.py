"""The admin API over HTTP, with treq; every failure becomes an ``AdminError`` with an exit
code and one readable line.

``AdminClient(reactor, base_url, token)`` gives one method per API call, each a Deferred of
the decoded JSON answer. The reactor is injected (tests run it on loopback); the HTTP agent
is treq's ``HTTPClient`` over a non-persistent pool, so a finished command leaves no socket.
"""

from __future__ import annotations

import json
from typing import Optional
from urllib.parse import quote

import treq
from treq.client import HTTPClient
from twisted.internet import defer, error
from twisted.web.client import Agent, HTTPConnectionPool

# Exit codes (documented in docs/operations.md and in --help).
OK = 0
REFUSED = 1  # the API answered but did not do it (400, 409, a refused reload...)
USAGE = 2
UNREACHABLE = 3  # connection refused, no route, timeout, not HTTP
UNAUTHORIZED = 4  # 401: no token or a wrong one
NOT_FOUND = 5  # 404: no such pool / member / path (or an admin API too old for the call)


class AdminError(Exception):
    """A failed call: ``message`` for the user, ``code`` the process's exit status."""

    def __init__(self, message: str, code: int, document=None):
        Exception.__init__(self, message)
        self.message = message
        self.code = code
        self.document = document


def _error_text(body: bytes) -> str:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(document, dict) and "error" in document:
        return str(document["error"])
    return json.dumps(document)[:200]


def classify(status: int, body: bytes, url: str) -> Optional[AdminError]:
    """None for a 2xx answer, else the ``AdminError`` it means (pure)."""
    if 200 <= status < 300:
        return None
    reason = _error_text(body)
    if status == 401:
        return AdminError("401 unauthorized at %s: %s (give --token or REVPROXY_ADMIN_TOKEN)"
                          % (url, reason or "a bearer token is needed"), UNAUTHORIZED)
    if status == 404:
        return AdminError("404 not found: %s: %s" % (url, reason or "no such path"), NOT_FOUND)
    return AdminError("%d from %s: %s" % (status, url, reason or "refused"), REFUSED)


class AdminClient:
    """Calls the admin API at ``base_url`` (``http://host:port``), with ``token`` as a bearer
    token when given. Each method returns a Deferred of the JSON answer, or fails with
    ``AdminError``."""

    def __init__(self, reactor, base_url: str, token: Optional[str] = None,
                 timeout: float = 10.0, http=None):
        self._reactor = reactor
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        if http is None:
            pool = HTTPConnectionPool(reactor, persistent=False)
            http = HTTPClient(Agent(reactor, pool=pool))
        self._http = http

    # -- the calls -----------------------------------------------------------------------------
    def status(self):
        return self._call("GET", "/api/status")

    def stats(self):
        return self._call("GET", "/api/stats")

    def member(self, pool: str, member: str, action: str, weight: Optional[int] = None):
        """``action``: drain, enable, disable or weight (then ``weight``, an integer, is
        sent as JSON ``{"weight": N}``)."""
        path = "/api/members/%s/%s/%s" % (_segment(pool), _segment(member), action)
        body = {"weight": weight} if action == "weight" else None
        return self._call("POST", path, body)

    def purge(self, url: Optional[str] = None, prefix: Optional[str] = None,
              tag: Optional[str] = None, soft: bool = False):
        """Exactly one of ``url``, ``prefix``, ``tag``; sent as a JSON body."""
        body = {k: v for k, v in (("url", url), ("prefix", prefix), ("tag", tag))
                if v is not None}
        if soft:
            body["soft"] = True
        return self._call("POST", "/api/purge", body)

    def reload(self):
        return self._call("POST", "/api/reload")

    # -- HTTP ------------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _call(self, method: str, path: str, body=None):
        url = self.base_url + path
        headers = {b"accept": [b"application/json"]}
        if self._token:
            headers[b"authorization"] = [b"Bearer " + self._token.encode("utf-8")]
        data = None
        if body is not None:
            headers[b"content-type"] = [b"application/json"]
            data = json.dumps(body).encode("utf-8")
        try:
            d = self._http.request(method, url, headers=headers, data=data)
            d.addTimeout(self._timeout, self._reactor)
            response = yield d
            d = treq.content(response)
            d.addTimeout(self._timeout, self._reactor)
            content = yield d
        except error.ConnectionRefusedError:
            raise AdminError("cannot connect to %s: connection refused (is [admin] listen "
                             "set, and is this its address? --admin / REVPROXY_ADMIN)"
                             % self.base_url, UNREACHABLE)
        except defer.TimeoutError:
            raise AdminError("no answer from %s within %gs" % (self.base_url, self._timeout),
                             UNREACHABLE)
        except (error.ConnectError, error.DNSLookupError) as e:
            raise AdminError("cannot connect to %s: %s" % (self.base_url, e), UNREACHABLE)
        except Exception as e:  # a reset, a non-HTTP answer...
            raise AdminError("failed talking to %s: %s" % (self.base_url, _failure_text(e)),
                             UNREACHABLE)
        problem = classify(response.code, content, url)
        if problem is not None:
            raise problem
        try:
            return json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AdminError("%s answered %d with something that is not JSON: %r"
                             % (url, response.code, content[:80]), UNREACHABLE)


def _failure_text(e) -> str:
    reasons = getattr(e, "reasons", None)  # twisted.web's ResponseFailed and kin
    if reasons:
        return "; ".join(r.getErrorMessage() for r in reasons)
    return str(e) or e.__class__.__name__


def _segment(name: str) -> str:
    """One path segment: ``/``, ``%``, ``?``, ``#`` and spaces percent-encoded (a member
    named ``https://host:443 (sni)`` stays one segment), ``host:port`` left readable."""
    return quote(name, safe=":@[]")

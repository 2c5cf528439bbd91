"""Hook phases: plugins that answer a request or let it continue, synchronously when they can.

A hook (``IRequestHook``) implements any of the phases below; a phase method returns None
("continue"), an ``Answer`` (the proxy answers instead, the request goes no further), or a
Deferred firing with one of those when it must wait. ``run_phase`` calls the hooks of one
phase in order; the first answer ends the chain. The synchronous case creates no Deferred,
and a phase that no hook implements costs one truth test of an empty tuple.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

# The phases in the order a request meets them (see revproxy.interfaces.IRequestHook).
PHASES = (
    "connection_made", "request_head", "request_body", "upstream_request", "response_head",
    "response_body", "request_end",
)


class Answer:
    """What a hook answers instead of the backend.

    ``status`` (int, 200-599), ``headers`` (a sequence of (bytes, bytes); no framing fields:
    Content-Length is set from ``body``), ``body`` (bytes), ``reason`` (str) for the error
    log, ``close`` (bool) to close the client connection after the answer.
    """

    __slots__ = ("status", "headers", "body", "reason", "close")

    def __init__(self, status, headers=(), body=b"", reason="", close=False):
        if not 200 <= status <= 599:
            raise ValueError("an Answer's status must be 200-599, not %r" % (status,))
        self.status = status
        self.headers = tuple(headers)
        self.body = body
        self.reason = reason
        self.close = close

    def __repr__(self):
        return "<Answer %d %s>" % (self.status, self.reason)


class RequestHook:
    """A convenient base for hooks: every phase is a no-op that continues.

    ``HookSet`` calls a hook only for the phases its class overrides, so a hook that only
    watches heads costs nothing in the other phases."""

    name = "unnamed"

    def connection_made(self, peer):
        return None

    def request_head(self, ctx):
        return None

    def request_body(self, ctx):
        return None

    def upstream_request(self, ctx, headers):
        return None

    def response_head(self, ctx, response):
        return None

    def response_body(self, ctx, data):
        return None

    def request_end(self, ctx, status):
        return None


class ResponseView:
    """The backend's response head as ``response_head`` hooks see it: ``status`` (int),
    ``reason`` (bytes) and ``headers``, the list of (name, value) about to be sent to the
    client (lower-case names, no hop-by-hop or framing fields), which hooks may change in place.
    ``content_length`` is the body length the client is told (None when unknown: chunked)."""

    __slots__ = ("status", "reason", "headers", "content_length")

    def __init__(self, status, reason, headers, content_length=None):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length


class HookSet:
    """The hooks of one runtime, sorted by phase: ``hooks.<phase>`` is a tuple of bound
    methods, in configuration order, of the hooks that implement that phase."""

    __slots__ = PHASES + ("hooks",)

    def __init__(self, hooks=()):
        self.hooks = tuple(hooks)
        for phase in PHASES:
            calls = []
            for hook in self.hooks:
                method = getattr(hook, phase, None)
                if method is None:
                    continue
                base = getattr(RequestHook, phase)
                if getattr(type(hook), phase, None) is base:
                    continue  # inherited no-op
                calls.append(method)
            setattr(self, phase, tuple(calls))

    def __bool__(self):
        return bool(self.hooks)


NO_HOOKS = HookSet()


def run_phase(calls, args, proceed, answer, failed, start=0):
    """Call ``calls[start:]`` with ``args`` in order.

    Every call continuing: ``proceed()``. The first ``Answer``: ``answer(it)``, and no later
    call is made. A call raising, or its Deferred failing: ``failed(Failure)``. Returns
    without waiting when a call returns a Deferred; the chain resumes when it fires.
    """
    index = start
    count = len(calls)
    while index < count:
        call = calls[index]
        index += 1
        try:
            result = call(*args)
        except Exception:
            failed(Failure())
            return
        if result is None:
            continue
        if isinstance(result, Deferred):
            def resumed(value, index=index):
                if value is None:
                    run_phase(calls, args, proceed, answer, failed, index)
                else:
                    _answered(value, answer, failed, call)

            result.addCallbacks(resumed, failed).addErrback(_log_failure)
            return
        _answered(result, answer, failed, call)
        return
    proceed()


def _log_failure(failure):
    from twisted.logger import Logger

    Logger(namespace="revproxy.hooks").failure("after a hook's Deferred fired", failure)


def _answered(value, answer, failed, call):
    if isinstance(value, Answer):
        answer(value)
    else:
        failed(Failure(TypeError("hook %r returned %r: expected None, an Answer or a Deferred"
                                 % (call, value))))

"""Fakes and the contract-test mixin for ``IRequestHook`` plugins.

A hook's tests reuse the contract like this::

    from twisted.trial import unittest
    from revproxy.testing.hooks import RequestHookContractMixin

    class MyHookContractTests(RequestHookContractMixin, unittest.TestCase):
        def make_hook(self):
            return MyHook({}, task.Clock())
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from revproxy.http1.parser import Limits, RequestParser
from revproxy.interfaces import IRequestHook
from revproxy.pipeline.context import BodyView, PeerFacts, RequestContext
from revproxy.pipeline.hooks import PHASES, Answer, ResponseView


def fake_context(raw=b"GET /x HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
                 client_ip="192.0.2.1", scheme="http", now=0.0, body=b""):
    """A ``RequestContext`` for the request head in ``raw`` (parsed by the real parser), from
    ``client_ip``; ``ctx.body`` is a view of ``body``."""
    parser = RequestParser(Limits())
    parser.feed(raw)
    head = parser.next_event()
    ctx = RequestContext(head, PeerFacts(client_ip, 40000, scheme, "tcp:0"), now)
    ctx.request_id = b"test-id"
    ctx.path = head.target.split(b"?")[0].decode("latin-1")
    ctx.body = BodyView(_BytesSpool(body), len(body))
    return ctx


class _BytesSpool:
    def __init__(self, data):
        self._data = data

    def peek(self, limit):
        return self._data[:limit]


def _settled(result, testcase):
    """The value a phase method decided: itself, or what its Deferred fired with (it must
    have fired already in these contract tests, whose hooks get no slow dependencies)."""
    if isinstance(result, Deferred):
        out = []
        result.addBoth(out.append)
        testcase.assertTrue(out, "a Deferred from a hook phase never fired")
        result = out[0]
    return result


class RequestHookContractMixin:
    """What every ``IRequestHook`` must do. Mix into a ``TestCase`` and define
    ``make_hook()``; optionally ``make_context()`` for a request the hook lets through."""

    def make_hook(self):
        raise NotImplementedError

    def make_context(self):
        return fake_context()

    def test_provides_interface(self):
        """The hook provides IRequestHook with every phase method and a name."""
        hook = self.make_hook()
        self.assertTrue(verifyObject(IRequestHook, hook))
        self.assertIsInstance(hook.name, str)

    def test_phases_return_none_answer_or_deferred(self):
        """Every decision phase answers None, an Answer, or a Deferred of one of those."""
        hook = self.make_hook()
        ctx = self.make_context()
        results = [
            hook.connection_made(ctx.peer),
            hook.request_head(ctx),
            hook.request_body(ctx),
            hook.upstream_request(ctx, [(b"host", b"example.test")]),
            hook.response_head(ctx, ResponseView(200, b"OK", [(b"content-type", b"text/plain")])),
        ]
        for phase, result in zip(PHASES, results):
            value = _settled(result, self)
            self.assertTrue(value is None or isinstance(value, Answer),
                            "%s returned %r" % (phase, value))

    def test_synchronous_phases_do_not_return_deferreds(self):
        """response_body and request_end decide synchronously."""
        hook = self.make_hook()
        ctx = self.make_context()
        self.assertNotIsInstance(hook.response_body(ctx, b"piece"), Deferred)
        self.assertNotIsInstance(hook.request_end(ctx, 200), Deferred)

    def test_head_is_not_changed(self):
        """No phase changes the shared request head."""
        hook = self.make_hook()
        ctx = self.make_context()
        before = (ctx.head.method, ctx.head.target, list(ctx.head.headers))
        _settled(hook.request_head(ctx), self)
        _settled(hook.request_body(ctx), self)
        _settled(hook.upstream_request(ctx, list(ctx.head.headers)), self)
        self.assertEqual((ctx.head.method, ctx.head.target, list(ctx.head.headers)), before)

"""Pipeline hooks: the phase runner, the hook set, and every phase through the whole proxy."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.internet import defer, error
from twisted.trial import unittest
from zope.interface import implementer

from revproxy.config.errors import ConfigError
from revproxy.config.load import check_hooks, parse_config
from revproxy.interfaces import IRequestHook
from revproxy.pipeline.hooks import Answer, HookSet, RequestHook, run_phase
from revproxy.testing.hooks import RequestHookContractMixin, fake_context
from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(calls, args=()):
    out = []
    run_phase(calls, args, lambda: out.append("continue"), lambda a: out.append(a),
              lambda f: out.append(f))
    return out


class RunPhaseTests(unittest.TestCase):
    @given(st.lists(st.sampled_from(["none", "answer", "deferred-none", "deferred-answer"]),
                    max_size=6))
    def test_first_answer_ends_the_chain(self, kinds):
        """Calls run in order up to the first answer (sync or via an already-fired
        Deferred); with no answer the chain continues exactly once."""
        called = []

        def make(i, kind):
            def call():
                called.append(i)
                if kind == "none":
                    return None
                if kind == "answer":
                    return Answer(403, reason=str(i))
                value = None if kind == "deferred-none" else Answer(403, reason=str(i))
                return defer.succeed(value)
            return call

        out = run([make(i, k) for i, k in enumerate(kinds)])
        answering = [i for i, k in enumerate(kinds) if k.endswith("answer")]
        if answering:
            self.assertEqual(called, list(range(answering[0] + 1)))
            self.assertEqual(len(out), 1)
            self.assertEqual(out[0].reason, str(answering[0]))
        else:
            self.assertEqual(called, list(range(len(kinds))))
            self.assertEqual(out, ["continue"])

    def test_waits_for_a_pending_deferred(self):
        """A pending Deferred holds the chain; the later calls run when it fires."""
        d = defer.Deferred()
        later = []
        out = run([lambda: d, lambda: later.append(1)])
        self.assertEqual((out, later), ([], []))
        d.callback(None)
        self.assertEqual((out, later), (["continue"], [1]))

    def test_raising_hook_fails_the_phase(self):
        """An exception becomes failed(Failure); later calls are not made."""
        later = []
        out = run([lambda: 1 / 0, lambda: later.append(1)])
        self.assertTrue(out[0].check(ZeroDivisionError))
        self.assertEqual(later, [])

    def test_wrong_return_type_fails(self):
        """A hook returning something else than None/Answer/Deferred is a TypeError."""
        out = run([lambda: "yes"])
        self.assertTrue(out[0].check(TypeError))

    def test_answer_status_checked(self):
        self.assertRaises(ValueError, Answer, 99)
        self.assertRaises(ValueError, Answer, 600)


class HookSetTests(unittest.TestCase):
    def test_only_overridden_phases_are_called(self):
        """A RequestHook subclass appears only in the phases it overrides, in config order."""
        class Head(RequestHook):
            def request_head(self, ctx):
                return None

        class Both(RequestHook):
            def request_head(self, ctx):
                return None

            def request_end(self, ctx, status):
                return None

        a, b = Head(), Both()
        hooks = HookSet([a, b])
        self.assertEqual([m.__self__ for m in hooks.request_head], [a, b])
        self.assertEqual([m.__self__ for m in hooks.request_end], [b])
        self.assertEqual(hooks.response_head, ())
        self.assertFalse(HookSet())


@implementer(IRequestHook)
class Recorder(RequestHook):
    """A hook that records its calls and answers as a test tells it."""

    name = "recorder"

    def __init__(self):
        self.calls = []
        self.answers = {}

    def _say(self, phase, *args):
        self.calls.append(phase)
        return self.answers.get(phase)

    def connection_made(self, peer):
        return self._say("connection_made", peer)

    def request_head(self, ctx):
        return self._say("request_head", ctx)

    def request_body(self, ctx):
        self.body = ctx.body.read(100)
        return self._say("request_body", ctx)

    def upstream_request(self, ctx, headers):
        headers.append((b"x-hooked", ctx.request_id))
        return self._say("upstream_request", ctx)

    def response_head(self, ctx, response):
        response.headers.append((b"x-seen", b"%d" % response.status))
        return self._say("response_head", ctx)

    def response_body(self, ctx, data):
        return self._say("response_body", ctx)

    def request_end(self, ctx, status):
        self.status = status
        return self._say("request_end", ctx)


def world_with(testcase, hook, **sections):
    world = World(testcase, config_dict(**sections))
    world.runtime.hooks = HookSet([hook])
    return world


class PhaseTests(unittest.TestCase):
    def test_every_phase_in_order(self):
        """A proxied POST meets the phases in order; hooks rewrite upstream and response
        headers and see the body."""
        hook = Recorder()
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        backend, upstream = world.accept_backend()
        self.assertIn(b"\r\nx-hooked: ", upstream.value())
        backend.dataReceived(OK)
        answer = client.value()
        self.assertIn(b"\r\nx-seen: 200\r\n", answer)
        self.assertTrue(answer.endswith(b"ok"))
        self.assertEqual(hook.calls, ["connection_made", "request_head", "request_body", "upstream_request",
                                      "response_head", "response_body", "request_end"])
        self.assertEqual((hook.body, hook.status), (b"abc", 200))

    def test_request_head_answer_never_reaches_backend(self):
        """An answer at request_head is sent; no backend is contacted; the connection
        stays usable for the next request."""
        hook = Recorder()
        hook.answers["request_head"] = Answer(429, ((b"retry-after", b"3"),), b"slow down\n",
                                              reason="rate")
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(GET)
        answer = client.take()
        self.assertTrue(answer.startswith(b"HTTP/1.1 429 "), answer)
        self.assertIn(b"\r\nretry-after: 3\r\n", answer)
        self.assertTrue(answer.endswith(b"slow down\n"))
        self.assertEqual(world.pending_connects, 0)
        self.assertFalse(client.disconnecting)
        del hook.answers["request_head"]
        proto.dataReceived(GET)
        self.assertEqual(world.pending_connects, 1)

    def test_request_head_answer_with_body_pending_closes(self):
        """An answer before the body arrived: answered at once, connection closed, no
        100-continue sent."""
        hook = Recorder()
        hook.answers["request_head"] = Answer(403, reason="no")
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                           b"Content-Length: 5\r\n\r\n")
        answer = client.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 "), answer)
        self.assertNotIn(b"100 Continue", answer)
        self.assertTrue(client.disconnecting)

    def test_deferred_request_head_waits_then_continues(self):
        """A Deferred from request_head holds the request (and its 100-continue) until it
        fires; then the request goes on."""
        hook = Recorder()
        d = defer.Deferred()
        hook.answers["request_head"] = d
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                           b"Content-Length: 3\r\n\r\n")
        self.assertEqual(client.value(), b"")
        d.callback(None)
        self.assertIn(b"100 Continue", client.value())
        proto.dataReceived(b"abc")
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().endswith(b"abc"))

    def test_request_body_answer(self):
        """request_body sees the whole body and may refuse it."""
        hook = Recorder()
        hook.answers["request_body"] = Answer(403, reason="body says no")
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nevil")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 403 "))
        self.assertEqual(world.pending_connects, 0)
        self.assertEqual(hook.body, b"evil")

    def test_response_head_answer_replaces_backend_response(self):
        """An answer at response_head replaces the backend's response; its connection is
        dropped (the body is not wanted)."""
        hook = Recorder()
        hook.answers["response_head"] = Answer(502, body=b"filtered\n", reason="leak")
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        answer = client.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 502 "), answer)
        self.assertTrue(answer.endswith(b"filtered\n"))
        self.assertNotIn(b"\r\n\r\nok", answer)
        self.assertTrue(upstream.aborted)

    def test_deferred_response_head_holds_the_body(self):
        """While a response_head hook waits, the body is held and the backend paused; then
        it all goes out in order."""
        hook = Recorder()
        d = defer.Deferred()
        hook.answers["response_head"] = d
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
        self.assertEqual(client.value(), b"")
        self.assertTrue(upstream.reading_paused)
        d.callback(None)
        self.assertFalse(upstream.reading_paused)
        backend.dataReceived(b"ok")
        answer = client.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\nokok"), answer)

    def test_response_body_refusal_breaks_the_response(self):
        """A non-None verdict from response_body cuts the response: never a clean end."""
        hook = Recorder()
        hook.answers["response_body"] = "secret in body"
        world = world_with(self, hook)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nse")
        self.assertTrue(client.disconnecting or client.aborted)
        self.assertNotIn(b"\r\n\r\nse", client.value())

    def test_raising_hook_is_500(self):
        """A hook that raises: 500, logged, nothing sent upstream."""
        class Broken(RequestHook):
            def request_head(self, ctx):
                raise RuntimeError("bug")

        world = world_with(self, Broken())
        proto, client = world.client()
        proto.dataReceived(GET)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 500 "))
        self.assertEqual(world.pending_connects, 0)
        self.flushLoggedErrors(RuntimeError)

    def test_connection_made_refusal(self):
        """connection_made may refuse a client before anything is parsed."""
        hook = Recorder()
        hook.answers["connection_made"] = Answer(403, reason="listed")
        world = world_with(self, hook)
        proto, client = world.client(peer=("127.0.0.9", 1234))
        proto.dataReceived(GET)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 403 "))
        self.assertTrue(client.disconnecting)
        self.assertEqual(world.pending_connects, 0)

    def test_deferred_connection_made_pauses_reading(self):
        """While connection_made waits, the connection does not read."""
        hook = Recorder()
        d = defer.Deferred()
        hook.answers["connection_made"] = d
        world = world_with(self, hook)
        proto, client = world.client()
        self.assertTrue(client.reading_paused)
        d.callback(None)
        self.assertFalse(client.reading_paused)

    def test_cache_hits_skip_backend_phases(self):
        """A cache hit meets request_head but neither upstream_request nor response_head."""
        hook = Recorder()
        world = world_with(self, hook, cache={"store": "memory"})
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                             b"Content-Length: 2\r\n\r\nok")
        client.clear()
        hook.calls[:] = []
        proto.dataReceived(GET)
        self.assertIn(b"cache-status: revproxy; hit", client.value().lower())
        self.assertEqual(hook.calls, ["request_head", "request_body", "request_end"])

    def test_scheme_comes_from_the_listener(self):
        """The request context carries the listener's scheme (https on TLS listeners)."""
        hook = Recorder()
        world = world_with(self, hook)
        from revproxy.server.protocol import ProxyFactory

        seen = []
        hook.request_head = lambda ctx: seen.append(ctx.scheme)
        world.runtime.hooks = HookSet([hook])
        proto = ProxyFactory(world.service._holder, "https", "ssl:0").buildProtocol(None)
        from tests.unit.world import Transport

        transport = Transport()
        proto.makeConnection(transport)
        proto.dataReceived(GET)
        self.assertEqual(seen, ["https"])
        backend, upstream = world.accept_backend()
        self.assertIn(b"\r\nx-forwarded-proto: https\r\n", upstream.value().lower())


class ConfigTests(unittest.TestCase):
    def test_hooks_table_parsed(self):
        """[[hooks]] entries keep their order, plugin names and options."""
        data = config_dict()
        data["hooks"] = [{"plugin": "a", "options": {"x": 1}}, {"plugin": "b"}]
        config = parse_config(data, "t.toml")
        self.assertEqual([(h.plugin, h.options) for h in config.hooks],
                         [("a", (("x", 1),)), ("b", ())])

    def test_bad_hooks_refused_with_key(self):
        """A hook entry without plugin, or with an unknown key, names the entry."""
        for hooks, where in (([{"options": {}}], "[[hooks]] #1 plugin"),
                             ([{"plugin": "a", "zap": 1}], "[[hooks]] #1 zap"),
                             ({"plugin": "a"}, "hooks")):
            data = config_dict()
            data["hooks"] = hooks
            with self.assertRaises(ConfigError) as caught:
                parse_config(data, "t.toml")
            self.assertIn(where, str(caught.exception))

    def test_unknown_plugin_lists_known(self):
        data = config_dict()
        data["hooks"] = [{"plugin": "nope"}]
        config = parse_config(data, "t.toml")
        with self.assertRaises(ConfigError) as caught:
            check_hooks(config, {"gate": "x"})
        self.assertIn("[[hooks]] #1 plugin", str(caught.exception))
        self.assertIn("gate", str(caught.exception))


class RecorderContractTests(RequestHookContractMixin, unittest.TestCase):
    def make_hook(self):
        return Recorder()


class ContextTests(unittest.TestCase):
    def test_fake_context_reads_head(self):
        ctx = fake_context(body=b"hello")
        self.assertEqual((ctx.method, ctx.header(b"user-agent"), ctx.body.read(3)),
                         (b"GET", b"t", b"hel"))
        ctx.note("k", 1)
        self.assertEqual(ctx.notes, {"k": 1})


class SinkTests(unittest.TestCase):
    def test_sinks_provide_the_interface(self):
        """The client writer and the background sink both provide IResponseSink."""
        from zope.interface.verify import verifyObject

        from revproxy.interfaces import IResponseSink
        from revproxy.server.sinks import DiscardSink
        from revproxy.server.writer import ResponseWriter

        class Conn:
            writing_paused = False

        self.assertTrue(verifyObject(IResponseSink, DiscardSink()))
        self.assertTrue(verifyObject(IResponseSink, ResponseWriter(Conn(), b"GET", b"1.1", True)))

    def test_discard_sink_tells_its_request_once(self):
        """A DiscardSink reports the end once, whether finished or aborted."""
        from revproxy.server.sinks import DiscardSink

        done = []

        class Request:
            def response_done(self):
                done.append(1)

        sink = DiscardSink()
        sink.request = Request()
        sink.start(200, b"OK", [], 2)
        sink.write(b"ok")
        sink.finish()
        sink.abort("late")
        self.assertEqual((done, sink.bytes_sent, sink.status), ([1], 2, 200))

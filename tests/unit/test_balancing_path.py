"""Load balancing in the request path, on a fake reactor: ejection, retries, queue, sticky,
decision header, reported load, panic."""

from __future__ import annotations

from twisted.internet import error
from twisted.trial import unittest

from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
TWO = ("http://10.0.0.1:80", "http://10.0.0.2:80")


def status_of(data):
    return int(data.split(b" ", 2)[1]) if data else None


class EjectionTests(unittest.TestCase):
    def test_failing_member_ejected_then_503_with_retry_after(self):
        """A lone member failing `consecutive_failures` times is ejected: the next request gets
        503 with a Retry-After naming the ejection's remaining time; nothing is connected."""
        world = World(self, config_dict(
            members=("http://10.0.0.1:80",),
            pool={"retries": 0, "outlier": {"consecutive_failures": 2, "base_ejection": 10,
                                           "max_ejected_percent": 100}}))
        for _ in range(2):
            proto, client = world.client()
            proto.dataReceived(GET)
            world.fail_connect(error.ConnectionRefusedError())
            self.assertEqual(status_of(client.value()), 502)
        proto, client = world.client()
        proto.dataReceived(GET)
        answer = client.value()
        self.assertEqual(status_of(answer), 503)
        self.assertIn(b"retry-after: 10\r\n", answer)
        self.assertEqual(world.pending_connects, 0)

    def test_ejected_member_returns_through_one_trial_request(self):
        """After the ejection, one trial request goes through; its success brings the member
        back (with slow start), while a second concurrent request is not sent to it."""
        world = World(self, config_dict(
            members=("http://10.0.0.1:80",),
            pool={"retries": 0, "slow_start": 20,
                  "outlier": {"consecutive_failures": 1, "base_ejection": 10,
                              "max_ejected_percent": 100}}))
        proto, client = world.client()
        proto.dataReceived(GET)
        world.fail_connect(error.ConnectionRefusedError())
        world.reactor.advance(11)
        trial, trial_t = world.client()
        trial.dataReceived(GET)
        other, other_t = world.client()
        other.dataReceived(GET)
        self.assertEqual(status_of(other_t.value()), 503, "only one trial while probing")
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        self.assertEqual(status_of(trial_t.value()), 200)
        member = world.runtime.backends["main"].members[0]
        self.assertEqual(member.state.status(world.reactor.seconds()), "healthy")
        self.assertLess(member.weight, 0.5, "slow start after coming back")
        world.reactor.advance(20)
        self.assertEqual(member.weight, 1.0)


class RetryTests(unittest.TestCase):
    def test_idempotent_request_retried_on_503(self):
        """A GET answered 503 by one member is sent to the other; the client sees its 200."""
        world = World(self, config_dict(members=TWO))
        proto, client = world.client()
        proto.dataReceived(GET)
        first, first_t = world.accept_backend()
        first.dataReceived(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        self.assertTrue(first_t.aborted)
        second, second_t = world.accept_backend()
        self.assertNotEqual(world.reactor.tcpClients[0][:2], world.reactor.tcpClients[1][:2])
        second.dataReceived(OK)
        self.assertEqual(status_of(client.value()), 200)

    def test_post_not_retried_after_reaching_backend(self):
        """A POST answered 503 is relayed as is: its body may have been acted upon."""
        world = World(self, config_dict(members=TWO))
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz")
        first, first_t = world.accept_backend()
        first.dataReceived(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        self.assertEqual(world.pending_connects, 0)
        self.assertEqual(status_of(client.value()), 503)

    def test_retry_budget_limits_retries(self):
        """With a zero budget ratio, only the floor of retries per window is granted."""
        world = World(self, config_dict(members=TWO, pool={"retry_budget": 0.0}))
        statuses = []
        for _ in range(5):
            proto, client = world.client()
            proto.dataReceived(GET)
            world.fail_connect(error.ConnectionRefusedError())
            if world.pending_connects:
                world.fail_connect(error.ConnectionRefusedError())
            statuses.append(status_of(client.value()))
        retried = len(world.reactor.tcpClients) - 5
        self.assertEqual(retried, 3, "the budget's floor: 3 retries per window")
        self.assertEqual(statuses, [502] * 5)


class QueueTests(unittest.TestCase):
    def test_connection_limit_queue_and_503(self):
        """With one connection per member: the second request waits, the third is refused
        (queue of 1), and the waiter runs once the first request ends."""
        world = World(self, config_dict(
            members=("http://10.0.0.1:80",),
            pool={"max_connections_per_member": 1, "queue_size": 1, "queue_timeout": 5}))
        a, a_t = world.client()
        a.dataReceived(GET)
        backend, upstream = world.accept_backend()
        b, b_t = world.client()
        b.dataReceived(GET)
        c, c_t = world.client()
        c.dataReceived(GET)
        self.assertEqual(status_of(c_t.value()), 503)
        self.assertEqual(b_t.value(), b"")
        backend.dataReceived(OK)
        self.assertEqual(status_of(a_t.value()), 200)
        self.assertEqual(upstream.value().count(b"GET /x"), 2, "b reused the freed connection")
        backend.dataReceived(OK)
        self.assertEqual(status_of(b_t.value()), 200)

    def test_queue_timeout(self):
        """A request waiting longer than queue_timeout gets 503."""
        world = World(self, config_dict(
            members=("http://10.0.0.1:80",),
            pool={"max_connections_per_member": 1, "queue_timeout": 3}))
        a, a_t = world.client()
        a.dataReceived(GET)
        world.accept_backend()
        b, b_t = world.client()
        b.dataReceived(GET)
        world.reactor.advance(2.9)
        self.assertEqual(b_t.value(), b"")
        world.reactor.advance(0.2)
        self.assertEqual(status_of(b_t.value()), 503)


class StickyAndDecisionTests(unittest.TestCase):
    def test_sticky_cookie_pins_the_member(self):
        """The first response sets the sticky cookie; requests carrying it go to that member."""
        world = World(self, config_dict(members=TWO, pool={"sticky_cookie": "rp"}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        answer = client.take()
        cookie = answer.split(b"set-cookie: ", 1)[1].split(b";", 1)[0]
        for _ in range(3):
            proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: " + cookie + b"\r\n\r\n")
            backend.dataReceived(OK)
            self.assertNotIn(b"set-cookie", client.take())
        self.assertEqual(world.pending_connects, 0)
        self.assertEqual(upstream.value().count(b"GET /x"), 4)

    def test_decision_header_only_for_debug_clients(self):
        """A debug client asking for it gets x-revproxy-decision; others never do."""
        world = World(self, config_dict(admin={"debug_clients": ["127.0.0.0/8"]}))
        ask = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Revproxy-Debug: 1\r\n\r\n"
        proto, client = world.client(("127.0.0.1", 1))
        proto.dataReceived(ask)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        self.assertIn(b"x-revproxy-decision: route=default pool=main member=10.0.0.1:8000 attempts=1",
                      client.value())
        self.assertNotIn(b"x-revproxy-debug", upstream.value().lower())
        outsider, outsider_t = world.client(("192.0.2.9", 1))
        outsider.dataReceived(ask)
        backend.dataReceived(OK)
        self.assertNotIn(b"x-revproxy-decision", outsider_t.value())


class ReportedLoadTests(unittest.TestCase):
    def test_load_header_drain_takes_member_out(self):
        """A member answering `x-load: drain` gets no new requests; the header is not relayed."""
        world = World(self, config_dict(members=TWO, pool={"load_header": "x-load"}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        drained = world.reactor.tcpClients[0][:2]
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nX-Load: drain\r\nContent-Length: 2\r\n\r\nok")
        self.assertNotIn(b"x-load", client.take().lower())
        for _ in range(4):
            proto.dataReceived(GET)
        self.assertEqual(world.pending_connects, 1)
        self.assertNotEqual(world.reactor.tcpClients[-1][:2], drained)

    def test_reported_percentage_scales_weight(self):
        """`x-load: 25%` makes the member's effective weight a quarter of its configured one."""
        world = World(self, config_dict(
            members=TWO, pool={"load_header": "x-load", "balance": "weighted-round-robin"}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nX-Load: 25%\r\nContent-Length: 2\r\n\r\nok")
        member = [m for m in world.runtime.backends["main"].members
                  if (m.host, m.port) == world.reactor.tcpClients[0][:2]][0]
        self.assertEqual(member.weight, 0.25)


class PanicTests(unittest.TestCase):
    def test_panic_spreads_over_all_members(self):
        """Below the panic threshold, ejected members get traffic again (and it is logged)."""
        world = World(self, config_dict(
            members=TWO,
            pool={"retries": 0, "panic_threshold": 0.6,
                  "outlier": {"consecutive_failures": 1, "base_ejection": 60,
                              "max_ejected_percent": 50}}))
        proto, client = world.client()
        proto.dataReceived(GET)
        world.fail_connect(error.ConnectionRefusedError())  # one of two ejected: 50% < 60%
        pool = world.runtime.backends["main"]
        targets = set()
        for _ in range(4):
            proto2, client2 = world.client()
            proto2.dataReceived(GET)
            targets.add(world.reactor.tcpClients[-1][:2])
            world.accept_backend()[0].dataReceived(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        self.assertTrue(pool.panicking)
        self.assertEqual(len(targets), 2, "both members served while in panic")


class LastMemberTests(unittest.TestCase):
    def test_5xx_relayed_when_no_other_member(self):
        """A one-member pool answering 503: nobody else to ask, the client gets that 503
        (with its body) and no retry budget is spent."""
        world = World(self, config_dict(members=("http://10.0.0.1:80",)))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        self.assertEqual(status_of(client.value()), 503)
        self.assertTrue(client.value().endswith(b"busy"))
        self.assertEqual(world.runtime.backends["main"].budget._retries, {})


class TrialWithLatencyPolicyTests(unittest.TestCase):
    def test_peak_ewma_sends_the_trial_and_forgets_the_failures(self):
        """With peak-EWMA, a member back from ejection still gets its trial request (the
        policy alone would never pick it: its failures cost a second each), and once back
        its EWMA starts afresh."""
        world = World(self, config_dict(
            members=TWO,
            pool={"balance": "peak-ewma", "retries": 0,
                  "outlier": {"consecutive_failures": 1, "base_ejection": 5,
                              "max_ejected_percent": 50}}))
        pool = world.runtime.backends["main"]
        # Warm both members, then make 10.0.0.1 fail once: it is ejected.
        failing = None
        for _ in range(50):
            if failing is not None:
                break
            proto, client = world.client()
            proto.dataReceived(GET)
            target = world.reactor.tcpClients[-1][:2] if world.pending_connects else None
            if target == ("10.0.0.1", 80):
                world.fail_connect(error.ConnectionRefusedError())
                failing = [m for m in pool.members if m.host == "10.0.0.1"][0]
            elif target is not None:
                world.accept_backend()[0].dataReceived(OK)
        self.assertIsNotNone(failing, "10.0.0.1 was picked within 50 requests")
        self.assertEqual(failing.state.status(world.reactor.seconds()), "ejected")
        world.reactor.advance(6)
        proto, client = world.client()
        proto.dataReceived(GET)
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.1", 80), "the trial goes to it")
        world.accept_backend()[0].dataReceived(OK)
        self.assertEqual(failing.state.status(world.reactor.seconds()), "healthy")
        self.assertEqual(failing.ewma, 0.0, "the failure's one-second penalty is forgotten")


class AgentWiringTests(unittest.TestCase):
    def test_agent_reply_scales_the_member_weight(self):
        """With agent_port set, the composition root polls each member's agent; a "25%"
        reply makes that member's effective weight a quarter."""
        from twisted.internet.address import IPv4Address

        from revproxy.server.watchers import pool_watchers

        world = World(self, config_dict(pool={"agent_port": 5555, "agent_interval": 5}))
        watchers = pool_watchers(world.reactor, world.runtime.backends["main"])
        [poller] = [w for w in watchers if type(w).__name__ == "AgentPoller"]
        poller.start()
        self.addCleanup(poller.stop)
        host, port, factory, timeout, bind = world.reactor.tcpClients[-1]
        self.assertEqual((host, port), ("10.0.0.1", 5555))
        agent = factory.buildProtocol(IPv4Address("TCP", host, port))
        from tests.unit.world import Transport

        agent.makeConnection(Transport((host, port)))
        agent.dataReceived(b"25%\n")
        member = world.runtime.backends["main"].members[0]
        self.assertEqual(member.weight, 0.25)

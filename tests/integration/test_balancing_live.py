"""Load balancing on loopback with three real backends: health checks, a member killed under
load and brought back (slow start), the admin status endpoint, latency-aware shares."""

from __future__ import annotations

import json

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web import resource, server

from tests.integration.support import connect, listen, proxy_config, start_proxy, with_timeout


class Member(resource.Resource):
    """Answers its own port; /healthz follows ``self.healthy``; ``delay`` slows every answer."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.healthy = True
        self.delay = 0.0
        self.port = None
        self.served = 0

    def render_GET(self, request):
        if request.path == b"/healthz":
            request.setResponseCode(200 if self.healthy else 503)
            return b"ok" if self.healthy else b"sick"
        self.served += 1
        body = b"%d" % self.port
        if not self.delay:
            return body

        def answer():
            if not request.finished and not request._disconnected:
                request.write(body)
                request.finish()

        reactor.callLater(self.delay, answer)
        return server.NOT_DONE_YET


def start_members(testcase, count=3):
    members, ports = [], []
    for _ in range(count):
        member = Member()
        site = server.Site(member)
        site.log = lambda request: None
        port = listen(site)
        member.port = port.getHost().port
        members.append(member)
        ports.append(port)
    for port in ports:
        testcase.addCleanup(lambda p=port: p.stopListening() if p.connected else None)
    return members, ports


@defer.inlineCallbacks
def get(port, path=b"/"):
    client = yield connect(port)
    client.transport.write(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path)
    [(head, body)] = yield with_timeout(client.responses(1))
    return head.status, body


def wait_for_state(pool, name, state, timeout=10.0):
    """A Deferred firing when member ``name`` of ``pool`` reaches ``state`` (event-driven:
    hooks the pool's probe results, where health changes happen)."""
    d = defer.Deferred()
    original = pool.probe_result

    def probe_result(member, ok, reason):
        original(member, ok, reason)
        if not d.called and member.name == name and member.state.status(reactor.seconds()) == state:
            pool.probe_result = original
            d.callback(member)

    pool.probe_result = probe_result
    return with_timeout(d, timeout)


class ActiveHealthTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_sick_member_taken_out_then_back_with_slow_start(self):
        """A member failing its health check stops getting traffic; once it passes again it
        rejoins with a ramped-up weight."""
        members, ports = start_members(self)
        data = proxy_config([m.port for m in members])
        data["pools"]["main"].update({
            "health": {"path": "/healthz", "interval": 0.1, "timeout": 0.09, "rise": 1, "fall": 1},
            "slow_start": 30,
        })
        service, port = yield start_proxy(self, data)
        pool = service.runtime.backends["main"]
        sick = members[1]
        name = "127.0.0.1:%d" % sick.port
        sick.healthy = False
        yield wait_for_state(pool, name, "down")
        before = sick.served
        for _ in range(9):
            status, body = yield get(port)
            self.assertEqual(status, 200)
        self.assertEqual(sick.served, before, "no request reached the down member")
        sick.healthy = True
        member = yield wait_for_state(pool, name, "healthy")
        self.assertLess(member.weight, 0.5, "slow start: weight ramps up from a low floor")
        status_doc = json.loads((yield self.admin_status(service)))
        self.assertEqual(status_doc["pools"]["main"]["members"][1]["state"], "healthy")

    @defer.inlineCallbacks
    def admin_status(self, service):
        from revproxy.admin.status import admin_site

        admin = listen(admin_site(service._holder))
        self.addCleanup(admin.stopListening)
        client = yield connect(admin.getHost().port)
        client.transport.write(b"GET /status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200)
        return body


class KilledMemberTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_member_killed_under_load_costs_no_idempotent_request(self):
        """Three members under a steady stream of GETs; one stops listening and its pooled
        connections are cut: every GET still succeeds (connect failures move to another
        member, and the dead one is ejected). Back on its port, it rejoins via slow start."""
        members, ports = start_members(self)
        data = proxy_config([m.port for m in members])
        data["pools"]["main"].update({"outlier": {"consecutive_failures": 2, "base_ejection": 0.3},
                                      "slow_start": 60})
        service, port = yield start_proxy(self, data)
        statuses = []
        for _ in range(12):
            status, _ = yield get(port)
            statuses.append(status)
        dead = service.runtime.backends["main"].members[0]
        yield ports[0].stopListening()
        dead.close_idle()  # what the backend's death does to pooled connections
        dead.closing = False
        for _ in range(30):
            status, _ = yield get(port)
            statuses.append(status)
        self.assertEqual(statuses, [200] * 42)
        self.assertEqual(dead.state.status(reactor.seconds()), "ejected")

        # Bring it back on the same port: once the ejection is over, one trial request
        # reaches it, and its success makes it healthy again with a slow-start weight.
        site = server.Site(members[0])
        site.log = lambda request: None
        revived = reactor.listenTCP(members[0].port, site, interface="127.0.0.1")
        self.addCleanup(revived.stopListening)
        yield sleep(max(0.0, dead.state.outlier.ejection_ends - reactor.seconds()) + 0.05)
        served = members[0].served
        for _ in range(6):
            status, _ = yield get(port)
            self.assertEqual(status, 200)
        self.assertGreater(members[0].served, served, "the revived member got its trial")
        self.assertEqual(dead.state.status(reactor.seconds()), "healthy")
        self.assertLess(dead.weight, 0.5, "rejoined through slow start")


class LatencyAwareTests(unittest.TestCase):
    @defer.inlineCallbacks
    def shares(self, policy):
        members, ports = start_members(self)
        # forty times slower than the others: the gap stays wide even when a loaded machine
        # adds tens of milliseconds of its own to every request (10x was seen to flake)
        members[2].delay = 0.2
        members[0].delay = members[1].delay = 0.005
        data = proxy_config([m.port for m in members])
        data["pools"]["main"]["balance"] = policy
        service, port = yield start_proxy(self, data)

        @defer.inlineCallbacks
        def worker():
            for _ in range(30):
                status, _ = yield get(port)
                self.assertEqual(status, 200)

        yield defer.gatherResults([worker() for _ in range(6)])
        total = sum(m.served for m in members)
        return members[2].served / float(total)

    @defer.inlineCallbacks
    def test_peak_ewma_sends_the_slow_member_a_small_share(self):
        """With one member 40x slower, peak-EWMA gives it far less than round-robin's third."""
        share = yield self.shares("peak-ewma")
        self.assertLess(share, 0.2)

    @defer.inlineCallbacks
    def test_round_robin_gives_a_third(self):
        """Round-robin ignores latency: the slow member gets its third."""
        share = yield self.shares("round-robin")
        self.assertGreater(share, 0.3)
        self.assertLess(share, 0.37)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class AdminListenerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_status_on_the_configured_admin_listener(self):
        """`[admin] listen` starts a separate listener whose /status shows pools and members."""
        members, ports = start_members(self, count=2)
        data = proxy_config([m.port for m in members],
                            admin={"listen": ["tcp:0:interface=127.0.0.1"]})
        service, port = yield start_proxy(self, data)
        status, _ = yield get(port)
        self.assertEqual(status, 200)
        admin_port = service.ports[0].getHost().port
        self.assertNotEqual(admin_port, port)
        status, body = yield get(admin_port, b"/status")
        self.assertEqual(status, 200)
        document = json.loads(body)
        pool = document["pools"]["main"]
        self.assertEqual(pool["policy"], "round-robin")
        self.assertEqual([m["state"] for m in pool["members"]], ["healthy", "healthy"])
        self.assertEqual(sum(m["open_connections"] for m in pool["members"]), 1)
        status, body = yield get(port, b"/status")  # on the proxy listener: just proxied
        self.assertIn(int(body), [m.port for m in members])

"""Health probes and agent queries against real servers on loopback, ephemeral ports."""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest
from twisted.web import resource, server

from revproxy.balancing.agent import agent_query
from revproxy.balancing.health import DRAIN, AgentReport
from revproxy.balancing.probe import http_probe
from revproxy.config.model import HealthCheck

LOOPBACK = "127.0.0.1"


class Health(resource.Resource):
    """``/health`` answers 200 "all systems ok"; any other path 404."""

    isLeaf = True

    def render_GET(self, request):
        if request.path != b"/health":
            request.setResponseCode(404)
            return b"no such page"
        return b"all systems ok"


class AgentReply(protocol.Protocol):
    """A minimal agent: says its piece and closes."""

    def connectionMade(self):
        self.transport.write(b"75% drain\n")
        self.transport.loseConnection()


def listen(factory):
    return reactor.listenTCP(0, factory, interface=LOOPBACK)


class LiveProbeTests(unittest.TestCase):
    timeout = 10

    def setUp(self):
        site = server.Site(Health())
        site.noisy = False
        self.port = listen(site)
        self.addCleanup(self.port.stopListening)

    def probe(self, **check):
        number = self.port.getHost().port
        return http_probe(reactor, LOOPBACK, number, HealthCheck(**check), reactor)

    @defer.inlineCallbacks
    def test_passing_probe(self):
        """A twisted.web resource answering 200 with the expected body passes."""
        ok, reason = yield self.probe(path="/health", expect_body="systems? ok")
        self.assertEqual((ok, reason), (True, "status 200, body matched"))

    @defer.inlineCallbacks
    def test_failing_probe_404(self):
        """A path the site does not have fails with its 404."""
        ok, reason = yield self.probe(path="/missing")
        self.assertEqual((ok, reason), (False, "status 404 not expected"))

    @defer.inlineCallbacks
    def test_agent_reply(self):
        """A real agent's '75% drain' line becomes a 75 % drain report."""
        factory = protocol.Factory.forProtocol(AgentReply)
        factory.noisy = False
        agent = listen(factory)
        self.addCleanup(agent.stopListening)
        report = yield agent_query(reactor, LOOPBACK, agent.getHost().port, 2.0, reactor)
        self.assertEqual(report, AgentReport(75.0, DRAIN, ""))

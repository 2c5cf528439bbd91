"""HTTP probes, agent queries and their pollers over a MemoryReactorClock (no sockets)."""

from __future__ import annotations

from collections import namedtuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from revproxy.balancing.agent import AgentPoller, agent_query
from revproxy.balancing.health import DOWN, DRAIN, AgentReport
from revproxy.balancing.probe import ActiveChecker, http_probe
from revproxy.config.model import HealthCheck

Member = namedtuple("Member", "name host port")


def results(d):
    """Collect what a Deferred fires with (a list, filled when it fires)."""
    out = []
    d.addBoth(out.append)
    return out


def accept(reactor, index=-1):
    """Complete the connection attempt ``index``: the protocol and its transport."""
    host, port, factory, timeout, bind = reactor.tcpClients[index]
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def close(proto):
    proto.connectionLost(Failure(ConnectionDone()))


def probe(reactor, check=None, host="10.0.0.1", port=8080):
    return results(http_probe(reactor, host, port, check or HealthCheck(), reactor))


# -- http_probe ----------------------------------------------------------------------------
def test_probe_sends_the_request_and_passes_on_200():
    """The probe writes the documented request and passes on an expected status."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(path="/health", timeout=3.0))
    host, port, _, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("10.0.0.1", 8080, 3.0)
    proto, transport = accept(reactor)
    assert transport.value() == (
        b"GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: revproxy-health\r\n"
        b"Connection: close\r\n\r\n")
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert out == [(True, "status 200")]
    assert transport.disconnecting
    assert not reactor.getDelayedCalls()  # the timeout was cancelled


def test_probe_host_header_and_ipv6():
    """check.host replaces the Host; an IPv6 member is dialled over TCP6, bracketed."""
    reactor = MemoryReactorClock()
    probe(reactor, HealthCheck(method="HEAD"), host="::1", port=81)
    _, transport = accept(reactor)
    assert transport.value().startswith(b"HEAD / HTTP/1.1\r\nHost: [::1]:81\r\n")
    probe(reactor, HealthCheck(host="svc.internal"))
    _, transport = accept(reactor)
    assert b"\r\nHost: svc.internal\r\n" in transport.value()


def test_probe_fails_on_unexpected_status():
    """A 404 outside expect_status fails, naming the status, and aborts."""
    reactor = MemoryReactorClock()
    out = probe(reactor)
    proto, transport = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert out == [(False, "status 404 not expected")]
    assert transport.disconnected


def test_probe_status_ranges_are_inclusive():
    """expect_status ((500, 503),) accepts 503 and refuses 200."""
    check = HealthCheck(expect_status=((500, 503),))
    reactor = MemoryReactorClock()
    out = probe(reactor, check)
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n")
    out2 = probe(reactor, check)
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 x\r\nContent-Length: 0\r\n\r\n")
    assert out[0][0] is True and out2[0][0] is False


def test_probe_skips_interim_responses():
    """A 100 Continue before the final 200 is not the verdict."""
    reactor = MemoryReactorClock()
    out = probe(reactor)
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert out == []
    proto.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert out == [(True, "status 204")]


def test_probe_body_regex_found_across_pieces():
    """expect_body matches text split over chunks of a chunked body."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(expect_body=r"status: (ok|fine)"))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstatu\r\n")
    assert out == []
    proto.dataReceived(b"6\r\ns: ok!\r\n0\r\n\r\n")
    assert out == [(True, "status 200, body matched")]


def test_probe_body_regex_missing_fails():
    """A body without the expected text fails."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(expect_body="ready"))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nstarting")
    assert out == [(False, "status 200, body did not match")]


def test_probe_body_regex_only_in_first_64k():
    """Text beyond the first 64 KiB is not searched; the verdict comes at 64 KiB."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(expect_body="needle"))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"x" * 65536)
    assert out == [(False, "status 200, body did not match")]


def test_probe_close_delimited_body_judged_at_close():
    """A body ended by the close is searched once the connection closes."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(expect_body="alive"))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\n\r\nI am alive")
    assert out == []
    close(proto)
    assert out == [(True, "status 200, body matched")]


def test_probe_close_before_end_fails():
    """A close inside the body fails with the parser's reason."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(expect_body="x"))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    close(proto)
    assert out == [(False, "bad response: response truncated in body")]


def test_probe_close_without_response_fails():
    """A close before any byte fails."""
    reactor = MemoryReactorClock()
    out = probe(reactor)
    proto, _ = accept(reactor)
    close(proto)
    assert out == [(False, "bad response: connection closed before response")]


def test_probe_protocol_error_fails():
    """A non-HTTP answer fails as a bad response and aborts the connection."""
    reactor = MemoryReactorClock()
    out = probe(reactor)
    proto, transport = accept(reactor)
    proto.dataReceived(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert out[0][0] is False and out[0][1].startswith("bad response: ")
    assert transport.disconnected


def test_probe_connect_refused_fails():
    """A refused connection fails with a connect reason."""
    reactor = MemoryReactorClock()
    out = probe(reactor)
    _, _, factory, _, _ = reactor.tcpClients[0]
    factory.clientConnectionFailed(reactor.connectors[0], Failure(ConnectionRefusedError()))
    assert out[0][0] is False and out[0][1].startswith("connect failed: ")
    assert not reactor.getDelayedCalls()


def test_probe_timeout_while_connecting():
    """No connection within check.timeout: fails with 'timeout', the attempt is stopped."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(timeout=2.0))
    reactor.advance(1.9)
    assert out == []
    reactor.advance(0.1)
    assert out == [(False, "timeout after 2s")]
    assert reactor.connectors[0].stoppedConnecting


def test_probe_timeout_waiting_for_response():
    """Connected but silent: fails with 'timeout' after check.timeout and aborts."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(timeout=1.5))
    proto, transport = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\n")
    reactor.advance(1.5)
    assert out == [(False, "timeout after 1.5s")]
    assert transport.disconnected
    close(proto)  # the real close that follows the abort changes nothing
    assert len(out) == 1


def test_probe_cancel_aborts_and_errbacks():
    """Cancelling a probe aborts its connection and fires CancelledError, no timer left."""
    reactor = MemoryReactorClock()
    d = http_probe(reactor, "10.0.0.1", 80, HealthCheck(), reactor)
    out = results(d)
    proto, transport = accept(reactor)
    d.cancel()
    assert isinstance(out[0], Failure) and out[0].check(CancelledError)
    assert transport.disconnected
    assert not reactor.getDelayedCalls()


def test_probe_cancel_while_connecting():
    """Cancelling before the connection exists stops the attempt."""
    reactor = MemoryReactorClock()
    d = http_probe(reactor, "10.0.0.1", 80, HealthCheck(), reactor)
    out = results(d)
    d.cancel()
    assert out[0].check(CancelledError)
    assert reactor.connectors[0].stoppedConnecting
    assert not reactor.getDelayedCalls()


def test_probe_bad_method_fails_without_connecting():
    """A method that cannot be encoded fails at once, no connection attempt."""
    reactor = MemoryReactorClock()
    out = probe(reactor, HealthCheck(method="G\u00e9T\u20ac"))
    assert out[0][0] is False and not reactor.tcpClients


# -- ActiveChecker -------------------------------------------------------------------------
def checker(reactor, members, seen, check=None, probe_fn=None):
    kwargs = {"probe": probe_fn} if probe_fn else {}
    return ActiveChecker(reactor, reactor, lambda: members, check or HealthCheck(interval=5.0),
                         lambda m, ok, why: seen.append((m.name, ok, why)), **kwargs)


def test_checker_probes_every_member_each_interval():
    """Each member is probed at start and again every interval."""
    reactor = MemoryReactorClock()
    members = [Member("a:1", "10.0.0.1", 1), Member("b:2", "10.0.0.2", 2)]
    seen = []
    c = checker(reactor, members, seen)
    c.start()
    assert [(h, p) for h, p, _, _, _ in reactor.tcpClients] == [("10.0.0.1", 1), ("10.0.0.2", 2)]
    for i in range(2):
        proto, _ = accept(reactor, i)
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert seen == [("a:1", True, "status 200"), ("b:2", True, "status 200")]
    reactor.advance(5.0)
    assert len(reactor.tcpClients) == 4
    c.stop()


def test_checker_never_overlaps_probes_of_one_member():
    """A member whose probe is still running is skipped on the next tick."""
    reactor = MemoryReactorClock()
    pending = {}

    def slow_probe(reactor_, host, port, check, clock):
        pending[host] = Deferred()
        return pending[host]

    seen = []
    members = [Member("a:1", "a", 1)]
    c = checker(reactor, members, seen, probe_fn=slow_probe)
    c.start()
    first = pending["a"]
    reactor.advance(5.0)
    assert pending["a"] is first and c.in_flight() == ("a:1",)
    first.callback((False, "timeout after 2s"))
    assert seen == [("a:1", False, "timeout after 2s")] and c.in_flight() == ()
    reactor.advance(5.0)
    assert pending["a"] is not first


def test_checker_synchronous_result_does_not_stick():
    """A probe that has already fired when returned leaves nothing in flight."""
    reactor = MemoryReactorClock()
    seen = []

    def instant(reactor_, host, port, check, clock):
        d = Deferred()
        d.callback((True, "fine"))
        return d

    c = checker(reactor, [Member("a:1", "a", 1)], seen, probe_fn=instant)
    c.start()
    reactor.advance(5.0)
    assert seen == [("a:1", True, "fine")] * 2 and c.in_flight() == ()
    c.stop()


def test_checker_stop_cancels_timer_and_probes():
    """stop() leaves no delayed call and aborts the connection of a probe in flight;
    the cancelled probe is not reported."""
    reactor = MemoryReactorClock()
    seen = []
    c = checker(reactor, [Member("a:1", "10.0.0.1", 1)], seen)
    c.start()
    proto, transport = accept(reactor)
    c.stop()
    assert not reactor.getDelayedCalls()
    assert transport.disconnected and seen == [] and not c.running


def test_checker_survives_failing_callback_and_provider():
    """An exception in on_result or members_provider does not stop later rounds."""
    reactor = MemoryReactorClock()
    calls = []

    def provider():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [Member("a:1", "a", 1)]

    def on_result(m, ok, why):
        raise ValueError("bad callback")

    def instant(*args):
        d = Deferred()
        d.callback((True, "fine"))
        return d

    c = ActiveChecker(reactor, reactor, provider, HealthCheck(interval=1.0), on_result,
                      probe=instant)
    c.start()
    reactor.advance(1.0)
    reactor.advance(1.0)
    assert len(calls) == 3 and c.running
    c.stop()


# -- agent ---------------------------------------------------------------------------------
def query(reactor, timeout=2.0):
    return results(agent_query(reactor, "10.0.0.1", 9999, timeout, reactor))


def test_agent_reads_until_newline():
    """A line is parsed as soon as its newline arrives; the connection is closed."""
    reactor = MemoryReactorClock()
    out = query(reactor)
    assert reactor.tcpClients[0][:2] == ("10.0.0.1", 9999)
    proto, transport = accept(reactor)
    proto.dataReceived(b"75% dr")
    assert out == []
    proto.dataReceived(b"ain\nignored")
    assert out == [AgentReport(75.0, DRAIN, "")]
    assert transport.disconnecting


def test_agent_reads_until_close():
    """Without a newline the reply ends at the peer's close."""
    reactor = MemoryReactorClock()
    out = query(reactor)
    proto, _ = accept(reactor)
    proto.dataReceived(b"down#maintenance")
    close(proto)
    assert out == [AgentReport(None, DOWN, "maintenance")]


def test_agent_reply_capped_at_1k():
    """At most 1 KiB is read: a longer line is cut and parsed at once."""
    reactor = MemoryReactorClock()
    out = query(reactor)
    proto, _ = accept(reactor)
    proto.dataReceived(b"50% " + b" " * 1100 + b"down")
    assert out == [AgentReport(50.0, None, "")]


def test_agent_empty_reply():
    """A close with nothing sent gives no change and says so."""
    reactor = MemoryReactorClock()
    out = query(reactor)
    proto, _ = accept(reactor)
    close(proto)
    assert out == [AgentReport(None, None, "empty reply")]


def test_agent_timeout_and_refusal():
    """Timeout and refusal both give no change with a reason."""
    reactor = MemoryReactorClock()
    out = query(reactor, timeout=1.0)
    accept(reactor)
    reactor.advance(1.0)
    assert out == [AgentReport(None, None, "timeout after 1s")]
    out = query(reactor)
    reactor.tcpClients[-1][2].clientConnectionFailed(
        reactor.connectors[-1], Failure(ConnectionRefusedError()))
    assert out[0][:2] == (None, None) and out[0].reason.startswith("connect failed: ")
    assert not reactor.getDelayedCalls()


def test_agent_poller_reports_and_stops_clean():
    """The poller queries every member on the agent port, reports, and stops clean."""
    reactor = MemoryReactorClock()
    seen = []
    members = [Member("a:80", "10.0.0.1", 80)]
    poller = AgentPoller(reactor, reactor, lambda: members, 9999, 4.0,
                         lambda m, r: seen.append((m.name, r)))
    poller.start()
    assert reactor.tcpClients[0][:2] == ("10.0.0.1", 9999)
    assert reactor.tcpClients[0][3] == 4.0  # timeout defaults to the interval
    proto, _ = accept(reactor)
    proto.dataReceived(b"up 100%\n")
    assert seen == [("a:80", AgentReport(100.0, "up", ""))]
    reactor.advance(4.0)
    proto, transport = accept(reactor)
    poller.stop()
    assert transport.disconnected and not reactor.getDelayedCalls() and len(seen) == 1

"""Active HTTP health probes: one probe (``http_probe``) and the periodic prober
(``ActiveChecker``). Also the plumbing the agent check shares: ``run_exchange`` (one short
TCP exchange under a deadline) and ``MemberPoller`` (query every member periodically).

Verdicts (rise/fall, ejection) are not made here: see ``health.py``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from revproxy.http1.parser import (
    END, NEED_DATA, Limits, ProtocolError, ResponseHead, ResponseParser,
)
from revproxy.netio import QuietFactory
from revproxy.upstream.tlsconn import tls_client_factory

log = Logger()

BODY_WINDOW = 64 * 1024  # expect_body is searched in this much of the body


# -- one exchange under a deadline ---------------------------------------------------------
class OneShotProtocol(Protocol):
    """A protocol for one short exchange: it calls ``finish(value)`` once with its result;
    ``done`` fires with that value. Subclasses override ``connectionMade``/``dataReceived``
    and ``ended(reason)`` (the connection closed before ``finish``)."""

    def __init__(self) -> None:
        self.done: Deferred = Deferred()
        self.finished = False

    def finish(self, value: Any, abort: bool = False) -> None:
        """Deliver the result and close the connection (``abort``: with a reset)."""
        if self.finished:
            return
        self.finished = True
        if self.transport is not None:
            if abort:
                self.transport.abortConnection()
            else:
                self.transport.loseConnection()
        self.done.callback(value)

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: D102 (Twisted's name)
        if not self.finished:
            self.ended(reason)

    def ended(self, reason: Failure) -> None:
        raise NotImplementedError


def client_endpoint(reactor: Any, host: str, port: int, timeout: float) -> Any:
    """A TCP client endpoint; IPv6 when the host contains a colon; a Unix-domain socket
    when ``host`` is a path (``/...``, a ``unix:`` member)."""
    if host.startswith("/"):
        return UNIXClientEndpoint(reactor, host, timeout=timeout)
    kind = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
    return kind(reactor, host, port, timeout=timeout)


def run_exchange(reactor: Any, clock: Any, host: str, port: int, timeout: float,
                 proto: OneShotProtocol, failed: Callable[[str], Any], tls: Any = None,
                 preface: bytes = b"") -> Deferred:
    """Connect ``proto`` to ``host:port`` and fire with its result, or with
    ``failed(reason)`` on a connect error or when ``timeout`` seconds pass first (the
    connection attempt is cancelled / the connection aborted). Never errbacks, except
    with ``CancelledError`` when the caller cancels it (which also aborts everything).
    ``tls``: a connection creator (an https:// member's): the exchange runs over TLS, the
    handshake inside the same deadline; ``preface``: bytes written in clear before the TLS
    handshake (a PROXY header; a plain exchange's protocol writes its own)."""
    return _Exchange(clock, timeout, proto, failed).start(
        client_endpoint(reactor, host, port, timeout), tls, clock, preface)


class _Exchange:
    """The deadline and cancellation around one ``OneShotProtocol``."""

    def __init__(self, clock: Any, timeout: float, proto: OneShotProtocol,
                 failed: Callable[[str], Any]) -> None:
        self._proto = proto
        self._failed = failed
        self._cancelled = False
        self.result: Deferred = Deferred(canceller=self._cancel)
        self._timer = clock.callLater(timeout, self._stop, "timeout after %gs" % timeout)
        self._connecting: Optional[Deferred] = None

    def start(self, endpoint: Any, tls: Any = None, clock: Any = None,
              preface: bytes = b"") -> Deferred:
        self._proto.done.addCallback(self._settle)
        factory = QuietFactory(self._proto)
        if tls is not None:
            factory = tls_client_factory(tls, factory, clock, preface)
        self._connecting = endpoint.connect(factory)
        self._connecting.addErrback(self._connect_failed)
        return self.result

    def _stop(self, reason: str) -> None:
        """Give up: finish with ``failed(reason)`` first (so the reason is ours), then
        abort the connection or cancel the attempt."""
        proto = self._proto
        connected = proto.transport is not None
        proto.finish(self._failed(reason), abort=connected)
        if not connected and self._connecting is not None:
            self._connecting.cancel()  # its errback finds the protocol finished

    def _cancel(self, _: Deferred) -> None:
        self._cancelled = True  # Deferred.cancel then errbacks with CancelledError
        self._stop("cancelled")

    def _connect_failed(self, failure: Failure) -> None:
        self._proto.finish(self._failed("connect failed: %s" % _describe(failure)))

    def _settle(self, value: Any) -> None:
        if self._timer.active():
            self._timer.cancel()
        if not self._cancelled:
            self.result.callback(value)


def _describe(failure: Failure) -> str:
    """A short human reason for a connection failure."""
    value = failure.value
    text = str(value).strip().rstrip(".")
    return text or type(value).__name__


# -- the HTTP probe ------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _body_regex(pattern: str) -> Any:
    return re.compile(pattern)


def host_header(host: str, port: int) -> str:
    """``host:port``, brackets around an IPv6 address; ``localhost`` for a Unix-domain socket
    (``host`` a path: what nginx sends to ``unix:`` upstreams)."""
    if host.startswith("/"):
        return "localhost"
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def probe_request(host: str, port: int, check: Any) -> bytes:
    """The probe's request bytes (``check`` is a ``HealthCheck``)."""
    return ("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: revproxy-health\r\n"
            "Connection: close\r\n\r\n" % (
                check.method, check.path, check.host or host_header(host, port))
            ).encode("latin-1")


def status_expected(status: int, ranges: Any) -> bool:
    """``status`` lies in one of the inclusive ``(low, high)`` ranges."""
    for low, high in ranges:
        if low <= status <= high:
            return True
    return False


class HttpProbeProtocol(OneShotProtocol):
    """Sends one probe request and judges the response: ``(ok, reason)``."""

    def __init__(self, request: bytes, check: Any, tls: bool = False) -> None:
        super().__init__()
        self._tls = tls  # over TLS: a close before any byte is told as the TLS failure
        self._got_bytes = False
        self._request = request
        self._check = check
        self._parser = ResponseParser(Limits())
        self._parser.expect(check.method.encode("latin-1"))
        self._status = 0
        self._body: list = []
        self._body_size = 0

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        self.transport.write(self._request)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._got_bytes = True
        self._parser.feed(data)
        self._drain()

    def ended(self, reason: Failure) -> None:
        if self._tls and not self._got_bytes:
            from revproxy.upstream.tls import describe_failure

            self.finish((False, describe_failure(reason)))
            return
        self._parser.feed_eof()
        self._drain()
        if not self.finished:  # only reachable if the parser neither ended nor failed
            self.finish((False, "connection closed before the end of the response"))

    def _drain(self) -> None:
        """Consume parser events until more data is needed or a verdict is reached."""
        parser = self._parser
        while not self.finished:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                self.finish((False, "bad response: %s" % exc.reason), abort=True)
                return
            if event is NEED_DATA:
                return
            if isinstance(event, ResponseHead):
                self._head(event)
            elif event is END:
                self._judge_body()
            elif type(event) is bytes:
                self._body_piece(event)
            else:  # PAUSED / CLOSED cannot precede END; be safe rather than loop
                self.finish((False, "unexpected parser state %r" % (event,)), abort=True)

    def _head(self, head: ResponseHead) -> None:
        if head.status < 200 and head.status != 101:
            return  # interim response: the final one follows
        self._status = head.status
        if not status_expected(head.status, self._check.expect_status):
            self.finish((False, "status %d not expected" % head.status), abort=True)
        elif self._check.expect_body is None:
            self.finish((True, "status %d" % head.status))  # the body is not needed

    def _body_piece(self, piece: bytes) -> None:
        room = BODY_WINDOW - self._body_size
        self._body.append(piece[:room])
        self._body_size += min(room, len(piece))
        if self._body_size >= BODY_WINDOW:
            self._judge_body()

    def _judge_body(self) -> None:
        body = b"".join(self._body).decode("utf-8", "replace")
        if _body_regex(self._check.expect_body).search(body):
            self.finish((True, "status %d, body matched" % self._status))
        else:
            self.finish((False, "status %d, body did not match" % self._status), abort=True)


def http_probe(reactor: Any, host: str, port: int, check: Any, clock: Any,
               tls: Any = None, preface: bytes = b"") -> Deferred:
    """Probe ``host:port`` once as ``check`` (a ``HealthCheck``) says. Fires with
    ``(ok, reason)``: ok when the status is in ``expect_status`` and, if set,
    ``expect_body`` is found in the first 64 KiB of the body. Connect errors, the
    ``check.timeout`` deadline, protocol errors and an early close give ``(False, why)``;
    it never errbacks unless cancelled (``CancelledError``). ``tls``: the connection
    creator of an https:// member (the probe goes over TLS, verified like requests).
    ``preface``: bytes the connection opens with, in clear even over TLS (the PROXY
    header of a ``send_proxy_protocol`` pool: ``PROXY UNKNOWN`` / LOCAL)."""
    try:
        request = probe_request(host, port, check)
        proto = HttpProbeProtocol(request if tls is not None else preface + request, check,
                                  tls is not None)
    except (UnicodeError, RuntimeError) as exc:  # a method/path the config should refuse
        return _fired((False, "bad probe request: %s" % exc))
    return run_exchange(reactor, clock, host, port, check.timeout, proto,
                        lambda reason: (False, reason), tls, preface)


def _fired(value: Any) -> Deferred:
    d: Deferred = Deferred()
    d.callback(value)
    return d


# -- periodic polling of every member ------------------------------------------------------
class MemberPoller:
    """Every ``interval`` seconds, runs ``query(member) -> Deferred`` for each member of
    ``members_provider()`` (objects with ``.name``), never two at once for the same
    member name (a member still being queried is skipped this round), and calls
    ``on_result(member, result)``. ``start`` queries at once; ``stop`` cancels the timer
    and every query in flight (their results are not reported)."""

    def __init__(self, clock: Any, members_provider: Callable[[], Any], interval: float,
                 query: Callable[[Any], Deferred], on_result: Callable[[Any, Any], None]) -> None:
        self._members = members_provider
        self._query = query
        self._on_result = on_result
        self.interval = interval
        self._loop = LoopingCall(self._round)
        self._loop.clock = clock
        self._in_flight: Dict[str, Deferred] = {}

    @property
    def running(self) -> bool:
        return self._loop.running

    def in_flight(self) -> Tuple[str, ...]:
        """Names of the members being queried now."""
        return tuple(self._in_flight)

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        in_flight, self._in_flight = self._in_flight, {}
        for d in in_flight.values():
            d.cancel()

    def _round(self) -> None:
        try:
            members = list(self._members())
        except Exception:  # a broken provider must not stop the loop for good
            log.failure("health: members_provider failed")
            return
        for member in members:
            name = member.name
            if name in self._in_flight:
                continue
            try:
                d = self._query(member)
            except Exception:
                log.failure("health: query of {name} failed", name=name)
                continue
            self._in_flight[name] = d  # before addBoth: it may already have fired
            d.addBoth(self._done, member, name, d)

    def _done(self, result: Any, member: Any, name: str, d: Deferred) -> None:
        if self._in_flight.get(name) is d:
            del self._in_flight[name]
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return None  # stopped: nothing to report
            log.failure("health: query of {name} failed", result, name=name)
            return None
        try:
            self._on_result(member, result)
        except Exception:
            log.failure("health: on_result for {name} failed", name=name)
        return None


class ActiveChecker:
    """Probes every member of ``members_provider()`` (objects with ``.host``, ``.port``,
    ``.name``) every ``check.interval`` seconds with ``http_probe`` and calls
    ``on_result(member, ok, reason)``; never two probes at once for one member."""

    def __init__(self, clock: Any, reactor: Any, members_provider: Callable[[], Any],
                 check: Any, on_result: Callable[[Any, bool, str], None],
                 probe: Callable[..., Deferred] = http_probe) -> None:
        self._clock = clock
        self._reactor = reactor
        self._check = check
        self._probe = probe
        self._report = on_result
        self._poller = MemberPoller(clock, members_provider, check.interval,
                                    self._query, self._on_result)

    def _query(self, member: Any) -> Deferred:
        tls = getattr(member, "tls", None)
        extra = {}
        if tls is not None:  # an https:// member is probed over TLS
            extra["tls"] = tls
        preface = getattr(member, "probe_preface", b"")
        if preface:  # send_proxy_protocol: a member that wants a header gets one
            extra["preface"] = preface
        return self._probe(self._reactor, member.host, member.port, self._check,
                           self._clock, **extra)

    def _on_result(self, member: Any, result: Tuple[bool, str]) -> None:
        ok, reason = result
        self._report(member, ok, reason)

    @property
    def running(self) -> bool:
        return self._poller.running

    def in_flight(self) -> Tuple[str, ...]:
        return self._poller.in_flight()

    def start(self) -> None:
        """Probe every member now, then every ``check.interval`` seconds."""
        self._poller.start()

    def stop(self) -> None:
        """Cancel the timer and every probe in flight (aborting their connections)."""
        self._poller.stop()

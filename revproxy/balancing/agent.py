"""HAProxy-style agent check: connect to a member's agent port, read one short line (its
weight and state, see ``health.parse_agent_reply``), and do so for every member
periodically (``AgentPoller``)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from revproxy.balancing.health import AgentReport, parse_agent_reply
from revproxy.balancing.probe import MemberPoller, OneShotProtocol, run_exchange

MAX_REPLY = 1024  # an agent reply is one short line; more is not read


class AgentProtocol(OneShotProtocol):
    """Reads until a newline, ``MAX_REPLY`` bytes or the peer's close; then parses."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.finished:
            return  # bytes racing our close
        self._buf += data
        end = self._buf.find(b"\n", 0, MAX_REPLY)
        if end >= 0:
            self._reply(self._buf[:end])
        elif len(self._buf) >= MAX_REPLY:
            self._reply(self._buf[:MAX_REPLY])

    def ended(self, reason: Failure) -> None:
        self._reply(self._buf)

    def _reply(self, line: bytes) -> None:
        report = parse_agent_reply(line.decode("latin-1"))
        if not line.strip():
            report = AgentReport(None, None, "empty reply")
        self.finish(report)


def _failed(reason: str) -> AgentReport:
    return AgentReport(None, None, reason)


def agent_query(reactor: Any, host: str, port: int, timeout: float, clock: Any) -> Deferred:
    """Ask the agent at ``host:port`` once. Fires with an ``AgentReport``; on a connect
    error or after ``timeout`` seconds it is ``AgentReport(None, None, reason)``. Never
    errbacks unless cancelled (``CancelledError``)."""
    return run_exchange(reactor, clock, host, port, timeout, AgentProtocol(), _failed)


class AgentPoller:
    """Queries the agent of every member of ``members_provider()`` (objects with
    ``.host``, ``.name``) on ``port`` every ``interval`` seconds and calls
    ``on_report(member, report)``; never two queries at once for one member. A query
    times out after ``timeout`` seconds (default: ``interval``, as a later answer is stale)."""

    def __init__(self, clock: Any, reactor: Any, members_provider: Callable[[], Any],
                 port: int, interval: float, on_report: Callable[[Any, AgentReport], None],
                 timeout: Optional[float] = None,
                 query: Callable[..., Deferred] = agent_query) -> None:
        self._clock = clock
        self._reactor = reactor
        self.port = port
        self.interval = interval
        self.timeout = interval if timeout is None else timeout
        self._query = query
        self._poller = MemberPoller(clock, members_provider, interval, self._ask, on_report)

    def _ask(self, member: Any) -> Deferred:
        return self._query(self._reactor, member.host, self.port, self.timeout, self._clock)

    @property
    def running(self) -> bool:
        return self._poller.running

    def start(self) -> None:
        """Query every member now, then every ``interval`` seconds."""
        self._poller.start()

    def stop(self) -> None:
        """Cancel the timer and every query in flight (aborting their connections)."""
        self._poller.stop()

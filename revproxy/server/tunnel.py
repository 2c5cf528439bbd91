"""A tunnel after a 101 (WebSocket): bytes both ways, untouched, with an idle timeout and an
optional maximum lifetime.

The two protocols keep reading their own sockets; each writes what it receives into its
``TunnelEnd`` (``ClientConnection`` into ``to_backend``, ``UpstreamConnection`` into
``to_client``), which forwards it and notes the time. ``Tunnel`` is watched by the runtime's
``Deadlines`` like a connection: its deadline is the earlier of "idle since the last byte"
and "lifetime reached", re-armed when it fires early because bytes moved meanwhile (so a byte
costs one clock read and no timer operation).
"""

from __future__ import annotations

from twisted.logger import Logger

log = Logger(namespace="revproxy.server")


class TunnelEnd:
    """What one side writes into: the other side's transport, as far as a tunnel needs it
    (``write``, ``unregisterProducer``, ``loseConnection``). Closing an end closes the whole
    tunnel: when one side goes away, so does the other."""

    __slots__ = ("_tunnel", "_transport")

    def __init__(self, tunnel, transport):
        self._tunnel = tunnel
        self._transport = transport

    def write(self, data):
        self._tunnel.last_activity = self._tunnel.clock.seconds()
        self._transport.write(data)

    def unregisterProducer(self):
        self._transport.unregisterProducer()

    def loseConnection(self):
        """The writing side closed: close this one too (after what it has queued)."""
        self._tunnel.side_closed()
        self._transport.unregisterProducer()
        self._transport.loseConnection()


class Tunnel:
    """Both transports of one tunnel and its two deadlines.

    ``idle_timeout`` > 0: no byte either way for that long closes both sides gracefully.
    ``max_lifetime`` > 0: that long after the start both sides are aborted, however busy.
    ``label`` names the tunnel in log lines (client address, request id).
    """

    def __init__(self, clock, deadlines, client_transport, backend_transport,
                 idle_timeout, max_lifetime, label):
        self.clock = clock
        self._deadlines = deadlines
        self._client = client_transport
        self._backend = backend_transport
        self._idle_timeout = idle_timeout
        self._label = label
        now = clock.seconds()
        self.started = now
        self.last_activity = now
        self._end_of_life = now + max_lifetime if max_lifetime > 0 else None
        self.to_backend = TunnelEnd(self, backend_transport)
        self.to_client = TunnelEnd(self, client_transport)
        self.closed = False
        self.deadline = None
        self._rearm()
        deadlines.watch(self)

    def _rearm(self):
        deadline = self.last_activity + self._idle_timeout
        end = self._end_of_life
        self.deadline = deadline if end is None or deadline < end else end

    def expired(self, now):
        """``Deadlines`` calls this once the deadline has passed."""
        if self.closed:
            return
        end = self._end_of_life
        if end is not None and now >= end:
            self._close_both("open for %gs (tunnel_max_lifetime)" % (now - self.started), True)
        elif now - self.last_activity >= self._idle_timeout:
            self._close_both("idle for %gs (tunnel_idle_timeout)" % (now - self.last_activity),
                             False)
        else:
            self._rearm()  # bytes moved since this deadline was set

    def side_closed(self):
        """One side went away (its protocol closes the other through a ``TunnelEnd``)."""
        if not self.closed:
            self.closed = True
            self.deadline = None
            self._deadlines.unwatch(self)

    def _close_both(self, why, abort):
        log.info("{label} tunnel closed: {why}", label=self._label, why=why)
        self.side_closed()
        for transport in (self._client, self._backend):
            # each is the other's producer; TLS would not close while one is registered
            transport.unregisterProducer()
            if abort:
                transport.abortConnection()
            else:
                transport.loseConnection()

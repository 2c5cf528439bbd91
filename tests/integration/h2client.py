"""A small HTTP/2 client for the integration tests: the h2 library over Twisted TLS with
ALPN h2, with knobs for slow reading and for misbehaving on purpose."""

from __future__ import annotations

from hyperframe.frame import Frame, GoAwayFrame

import h2.config
import h2.connection
import h2.events
import h2.settings
from twisted.internet import defer, protocol, reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol

from tests.integration.support import LOOPBACK


class H2ClientProtocol(protocol.Protocol):
    """``request()`` returns a Deferred of (status, headers dict, body). GOAWAY frames are
    recorded in ``goaways`` (and kept from the h2 library, which would refuse the frames
    that legitimately follow a graceful GOAWAY)."""

    def __init__(self, window=None, auto_ack=True):
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self._window = window
        self.auto_ack = auto_ack
        self._streams = {}  # sid -> [status, headers, [body], Deferred]
        self.goaways = []
        self.resets = []
        self.closed = defer.Deferred()
        self._buffer = b""
        self.received = {}  # sid -> body bytes received so far

    def connectionMade(self):
        self.h2.initiate_connection()
        if self._window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self._window})
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data and self.transport.connected:
            self.transport.write(data)

    def request(self, method=b"GET", path=b"/", body=None, authority=b"a.test", headers=()):
        sid = self.h2.get_next_available_stream_id()
        fields = [(b":method", method), (b":scheme", b"https"), (b":authority", authority),
                  (b":path", path)] + list(headers)
        self.h2.send_headers(sid, fields, end_stream=body is None)
        d = defer.Deferred()
        self._streams[sid] = [None, {}, [], d, body or b""]
        self.received[sid] = 0
        self.flush()
        if body:
            self._send_body(sid)
        return sid, d

    def _send_body(self, sid):
        state = self._streams.get(sid)
        if state is None or not state[4]:
            return
        body = state[4]
        while body:
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if window <= 0:
                break
            self.h2.send_data(sid, body[:window])
            body = body[window:]
        state[4] = body
        if not body:
            self.h2.end_stream(sid)
        self.flush()

    def ack(self, sid, size):
        self.h2.acknowledge_received_data(size, sid)
        self.flush()

    def dataReceived(self, data):
        self._buffer += data
        whole = b""
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            raw, self._buffer = self._buffer[:9 + length], self._buffer[9 + length:]
            if isinstance(frame, GoAwayFrame):
                frame.parse_body(memoryview(raw[9:]))
                self.goaways.append((frame.error_code, frame.last_stream_id))
                continue
            whole += raw
        if not whole:
            return
        for event in self.h2.receive_data(whole):
            self._event(event)
        self.flush()

    def _event(self, event):
        state = self._streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived) and state is not None:
            headers = dict(event.headers)
            state[0] = int(headers.pop(b":status"))
            state[1] = headers
        elif isinstance(event, h2.events.DataReceived):
            if state is not None:
                state[2].append(event.data)
                self.received[event.stream_id] += len(event.data)
            if self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and state is not None:
            del self._streams[event.stream_id]
            state[3].callback((state[0], state[1], b"".join(state[2])))
        elif isinstance(event, h2.events.StreamReset):
            self.resets.append((event.stream_id, event.error_code))
            if state is not None:
                del self._streams[event.stream_id]
                state[3].errback(RuntimeError("stream %d reset: %s"
                                              % (event.stream_id, event.error_code)))
        elif isinstance(event, h2.events.WindowUpdated):
            for sid in list(self._streams):
                self._send_body(sid)

    def connectionLost(self, reason=None):
        for sid, state in list(self._streams.items()):
            state[3].errback(RuntimeError("connection lost with stream %d open" % sid))
        self._streams = {}
        self.closed.callback(None)


@defer.inlineCallbacks
def h2_connect(port, cert_pem, **kwargs):
    """An ``H2ClientProtocol`` over TLS to ``port``, verifying ``cert_pem`` and offering
    only h2 in ALPN; its ``negotiated`` attribute says what the server chose."""
    options = ssl.optionsForClientTLS(
        "localhost", trustRoot=ssl.Certificate.loadPEM(cert_pem), acceptableProtocols=[b"h2"])
    client = H2ClientProtocol(**kwargs)
    yield connectProtocol(SSL4ClientEndpoint(reactor, LOOPBACK, port, options), client)
    return client

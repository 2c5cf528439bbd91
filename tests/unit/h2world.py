"""An h2 client (the h2 library, client side) talking to ``H2ServerConnection`` over a
StringTransport, inside the fake-reactor ``World`` (tests/unit/world.py)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings

from revproxy.http2.connection import H2ServerConnection
from tests.unit.world import Transport


class H2Client:
    """The client side of one connection. ``exchange()`` moves bytes both ways until quiet;
    ``events`` collects what the client received."""

    def __init__(self, world, peer=("127.0.0.1", 40000), window=None, pump=True):
        self.world = world
        self.proto = H2ServerConnection(world.service._holder.current)
        self.transport = Transport(peer)
        self.proto.makeConnection(self.transport)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None,
            # the tests send malformed requests on purpose
            validate_outbound_headers=False, normalize_outbound_headers=False))
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.events = []
        self.auto_ack = True  # acknowledge received DATA (grow our receive window)
        if pump:
            self.exchange()

    def exchange(self):
        """Client bytes to the server and server bytes to the client until neither has any."""
        for _ in range(1000):
            moved = False
            out = self.h2.data_to_send()
            if out and not self.transport.disconnecting:
                self.proto.dataReceived(out)
                moved = True
            got = self.transport.take()
            if got:
                self.receive(got)
                moved = True
            if not moved:
                return
        raise AssertionError("the conversation did not settle")

    def receive(self, data):
        for event in self.h2.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.DataReceived) and self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def request(self, method=b"GET", path=b"/x", authority=b"a.test", headers=(), body=None,
                end=True):
        sid = self.h2.get_next_available_stream_id()
        fields = [(b":method", method), (b":scheme", b"https"), (b":authority", authority),
                  (b":path", path)] + list(headers)
        self.h2.send_headers(sid, fields, end_stream=body is None and end)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=end)
        return sid

    # -- what came back --------------------------------------------------------------------
    def response(self, sid):
        """(status, headers dict, body bytes, ended) of stream ``sid`` so far."""
        status, headers, body, ended = None, {}, b"", False
        for event in self.events:
            if getattr(event, "stream_id", None) != sid:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers.pop(b":status"))
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        return status, headers, body, ended

    def of(self, kind, sid=None):
        return [e for e in self.events if isinstance(e, kind)
                and (sid is None or getattr(e, "stream_id", None) == sid)]

    def resets(self, sid=None):
        return self.of(h2.events.StreamReset, sid)

    def goaway(self):
        found = self.of(h2.events.ConnectionTerminated)
        return found[-1] if found else None


def backend_request(upstream):
    """The head the proxy sent to a backend, as (request line, {name: value})."""
    head = upstream.value().split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        fields[name.lower()] = value.strip()
    return head[0], fields


def read_frames(data, decoder):
    """HEADERS and DATA frames in ``data`` as ("HEADERS", sid, [(name, value)] without
    framing fields but :status) / ("DATA", sid, bytes, end_stream); others skipped."""
    from hyperframe.frame import DataFrame, Frame, HeadersFrame

    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        data = data[9 + length:]
        if isinstance(frame, HeadersFrame):
            fields = [(bytes(n), bytes(v)) for n, v in decoder.decode(frame.data, raw=True)]
            out.append(("HEADERS", frame.stream_id,
                        [f for f in fields if f[0] in (b":status",)]))
        elif isinstance(frame, DataFrame):
            out.append(("DATA", frame.stream_id, bytes(frame.data),
                        "END_STREAM" in frame.flags))
    return out

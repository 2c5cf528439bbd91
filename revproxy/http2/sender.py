"""``Machine``: h2's ``H2Connection`` with a lean way out for what a proxy sends most.

A response is one HEADERS frame (rarely with CONTINUATIONs) and a few DATA frames. h2 builds a
hyperframe object per frame, re-encodes the header list to bytes, builds validation flags it
does not use with outbound validation off, and logs at debug level on each call: about half of
its cost per request. ``send_headers``, ``send_data`` and ``end_stream`` here take the same
steps on the same state (the connection's and the stream's state machines, both flow-control
windows, the HPACK encoder) and write the frames' bytes directly. Anything else (a stream h2
does not know, padding, priority, an informational response, a memoryview, a client-side
connection, an empty DATA frame) goes to h2's own method, so its checks and errors stay
h2's. This reaches into h2's internals (``_data_to_send``, the stream state machines,
``_frame_dispatch_table``): pyproject.toml keeps h2 below 5, and the test fails on a
4.x that changed them.

``_receive_frame`` is h2's (the same in 4.3 and 4.4), less the ``repr()`` of every received
frame that h2 makes for a trace logger that does nothing (about 1.5 µs a frame).

tests/unit/test_h2_sender.py requires the same bytes, states, windows and exceptions as h2's
methods over random sequences of calls.
"""

from __future__ import annotations

import struct

from h2.connection import ConnectionInputs, H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import (FlowControlError, FrameTooLargeError, ProtocolError,
                           StreamClosedError, StreamIDTooLowError)
from h2.stream import StreamInputs
from hyperframe.frame import RstStreamFrame

_HEAD = struct.Struct(">BHBBL")  # length (24 bits as 8 + 16), type, flags, stream id
_DATA, _HEADERS, _CONTINUATION = 0x0, 0x1, 0x9
_END_STREAM, _END_HEADERS = 0x1, 0x4

_C_SEND_HEADERS = ConnectionInputs.SEND_HEADERS
_C_SEND_DATA = ConnectionInputs.SEND_DATA
_S_SEND_HEADERS = StreamInputs.SEND_HEADERS
_S_SEND_DATA = StreamInputs.SEND_DATA
_S_SEND_END_STREAM = StreamInputs.SEND_END_STREAM


def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, sid) + payload


def _informational(headers) -> bool:
    for name, value in headers:
        if name == b":status":
            return value[:1] == b"1"
        if name[:1] != b":":
            return False
    return False


class Machine(H2Connection):
    """A server-side ``H2Connection`` whose common sends skip hyperframe (see the module)."""

    def send_headers(self, stream_id, headers, end_stream=False, priority_weight=None,
                     priority_depends_on=None, priority_exclusive=None):
        stream = self.streams.get(stream_id)
        if (stream is None or self.config.client_side or priority_weight is not None
                or priority_depends_on is not None or priority_exclusive is not None
                or not isinstance(headers, list) or _informational(headers)):
            return super().send_headers(stream_id, headers, end_stream, priority_weight,
                                        priority_depends_on, priority_exclusive)
        self.state_machine.process_input(_C_SEND_HEADERS)
        machine = stream.state_machine
        machine.process_input(_S_SEND_HEADERS)
        block = self.encoder.encode(headers)
        size = stream.max_outbound_frame_size or 0
        if end_stream:
            machine.process_input(_S_SEND_END_STREAM)
        if machine.trailers_sent and not end_stream:
            raise ProtocolError("Trailers must have END_STREAM set.")
        first = _END_STREAM if end_stream else 0
        if len(block) <= size:
            self._data_to_send += _frame(_HEADERS, first | _END_HEADERS, stream_id, block)
            return None
        pieces = [block[i:i + size] for i in range(0, len(block), size)]
        last = len(pieces) - 1
        out = self._data_to_send
        for i, piece in enumerate(pieces):
            flags = (first if i == 0 else 0) | (_END_HEADERS if i == last else 0)
            out += _frame(_HEADERS if i == 0 else _CONTINUATION, flags, stream_id, piece)
        return None

    def send_data(self, stream_id, data, end_stream=False, pad_length=None):
        stream = self.streams.get(stream_id)
        if (stream is None or pad_length is not None or not isinstance(data, bytes)
                or not data):  # (h2 4.3 and 4.4 differ on an empty frame in a negative window)
            return super().send_data(stream_id, data, end_stream, pad_length)
        size = len(data)
        window = min(self.outbound_flow_control_window, stream.outbound_flow_control_window)
        if size > window:
            raise FlowControlError("Cannot send %d bytes, flow control window is %d"
                                   % (size, window))
        if size > self.max_outbound_frame_size:
            raise FrameTooLargeError("Cannot send frame size %d, max frame size is %d"
                                     % (size, self.max_outbound_frame_size))
        self.state_machine.process_input(_C_SEND_DATA)
        machine = stream.state_machine
        machine.process_input(_S_SEND_DATA)
        if end_stream:
            machine.process_input(_S_SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        self._data_to_send += _frame(_DATA, _END_STREAM if end_stream else 0, stream_id, data)
        return None

    def end_stream(self, stream_id):
        stream = self.streams.get(stream_id)
        if stream is None:
            return super().end_stream(stream_id)
        self.state_machine.process_input(_C_SEND_DATA)
        stream.state_machine.process_input(_S_SEND_END_STREAM)
        self._data_to_send += _frame(_DATA, _END_STREAM, stream_id, b"")
        return None

    def _receive_frame(self, frame):
        # h2 4.x's H2Connection._receive_frame (MIT licence), without its eager
        # ``self.config.logger.trace("Received frame: %s", repr(frame))``.
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            # Closed by RST_STREAM: a stream error (RST_STREAM back); else a connection error.
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except StreamIDTooLowError as e:
            # A cleaned-up or implicitly closed stream: how it closed decides the error.
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([f])
                events = []
            elif self._stream_is_closed_by_end(e.stream_id):
                raise StreamClosedError(e.stream_id) from e
            else:
                raise
        else:
            self._prepare_for_sending(frames)
        return events

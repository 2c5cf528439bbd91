"""Output batching: a connection's writes leave in one ``send()`` at the end of the reactor turn.

Twisted's ``transport.write`` queues the bytes and asks epoll to report writability
(``epoll_ctl`` to add, later another to remove): four extra system calls per proxied request,
about a fifth of the CPU of the 1 KiB benchmark in a py-spy profile. Sending at once instead
was measured *slower*: each event then wakes the peer mid-batch, so the next ``epoll_wait``
returns fewer events. ``Outbox`` keeps the batching and drops the ``epoll_ctl`` calls: writes
are held per connection and sent together right after the current batch of events, directly
on the socket when the transport has nothing queued, else through ``transport.write`` (so
ordering, buffering and producer flow control stay Twisted's).

The direct send is only for a plain TCP transport, recognised by its exact type
(``twisted.internet.tcp.Connection``), never by looking for a ``socket`` attribute: Twisted's
TLS wrapper forwards unknown attributes to the TCP transport below it
(``ProtocolWrapper.__getattr__``), so ``transport.socket`` there is the raw socket and a send
on it would bypass TLS. Every other transport (TLS, fakes) only ever gets ``transport.write``.

Contract for a connection using an outbox: every write goes through ``Outbox.write``, and
``Outbox.flush(transport)`` comes before anything that closes the transport or hands it to
another writer (a producer, a tunnel).
"""

from __future__ import annotations

import struct

from twisted.internet.protocol import Factory
from twisted.internet.tcp import Connection as _TCPConnection

try:
    import fcntl
    import sys as _sys
    import termios

    # SIOCOUTQ (= TIOCOUTQ on Linux): a socket's unacknowledged + unsent bytes
    _SIOCOUTQ = termios.TIOCOUTQ if _sys.platform.startswith("linux") else None
except ImportError:  # not Unix
    _SIOCOUTQ = None


class QuietFactory(Factory):
    """Hands an endpoint one prepared protocol and logs nothing per connection (Twisted's
    factories log "Starting factory" for each: noise for pooled and probe connections)."""

    noisy = False

    def __init__(self, proto):
        self._proto = proto

    def buildProtocol(self, addr):
        return self._proto


class Outbox:
    """Per-reactor holder of pending output, flushed once per reactor turn."""

    def __init__(self, reactor, batch: bool = True):
        self._reactor = reactor
        self._batch = batch  # False: write through at once (unit tests on a fake clock)
        self._pending = {}  # transport -> list of bytes, in write order
        self._scheduled = False

    def write(self, transport, data: bytes) -> None:
        if not self._batch:
            transport.write(data)
            return
        chunks = self._pending.get(transport)
        if chunks is None:
            self._pending[transport] = [data]
            if not self._scheduled:
                self._scheduled = True
                self._reactor.callLater(0, self._flush_all)
        else:
            chunks.append(data)

    def flush(self, transport) -> None:
        """Send what ``transport`` has pending now (before closing it, say)."""
        chunks = self._pending.pop(transport, None)
        if chunks:
            _send(transport, chunks)

    def pending_bytes(self, transport) -> int:
        """Bytes held for ``transport`` until the end of this reactor turn."""
        chunks = self._pending.get(transport)
        return sum(map(len, chunks)) if chunks else 0

    def discard(self, transport) -> None:
        """Forget pending output (the connection is being aborted)."""
        self._pending.pop(transport, None)

    def _flush_all(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for transport, chunks in pending.items():
            _send(transport, chunks)


def send_direct(transport, data: bytes) -> None:
    """Send ``data`` now: on the socket of a plain TCP transport with nothing queued,
    through ``transport.write`` otherwise (the TLS listener's ciphertext goes this way)."""
    _send(transport, [data])


def _send(transport, chunks) -> None:
    """Send ``chunks`` (a list of bytes) in order: one ``send``, or one ``sendmsg`` (no copy)
    for several; whatever the socket does not take goes to ``transport.write``.

    Only a plain TCP transport (exact type check: see the module docstring) is sent to
    directly, and only while it has nothing queued itself."""
    if (
        not isinstance(transport, _TCPConnection)
        or transport.dataBuffer
        or transport._tempDataLen
        or transport.disconnecting
        or not transport.connected
    ):
        transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        return
    sock = transport.socket
    try:
        if len(chunks) == 1:
            sent = sock.send(chunks[0])
        elif len(chunks) <= 64:
            sent = sock.sendmsg(chunks)
        else:
            chunks = [b"".join(chunks)]
            sent = sock.send(chunks[0])
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # let Twisted meet the error and close the connection its way
        transport.write(b"".join(chunks))
        return
    for chunk in chunks:
        if sent >= len(chunk):
            sent -= len(chunk)
            continue
        transport.write(chunk[sent:] if sent else chunk)
        sent = 0


def unsent_bytes(transport) -> int:
    """Bytes written to a transport that the client has not acknowledged yet.

    What a slow reader has really taken is what we wrote minus this (``[limits]
    min_response_rate``). For a plain TCP transport (exact type, as ``_send``): the buffer of
    ``abstract.FileDescriptor`` (its fields, read only) plus the kernel's send queue (Linux
    ``SIOCOUTQ``: bytes not yet acknowledged by the peer; without it the socket buffer, which
    grows to megabytes, would count as taken). For Twisted's TLS wrapper the same of the TCP
    transport below it (ciphertext: a few bytes per 16 KiB record more than we wrote); 0 for
    anything else (tests' fakes deliver at once)."""
    if not isinstance(transport, _TCPConnection):
        inner = getattr(transport, "wrappedProtocol", None) and getattr(transport, "transport", None)
        if not isinstance(inner, _TCPConnection):
            return 0
        transport = inner
    return (len(transport.dataBuffer) - transport.offset + transport._tempDataLen
            + _kernel_unacked(transport))


_OUTQ = bytearray(4)  # SIOCOUTQ's answer (reactor thread only, read at once)
_INT = struct.Struct("i")


def _kernel_unacked(transport) -> int:
    if _SIOCOUTQ is None or not transport.connected:
        return 0
    try:
        # Into a mutable buffer: for an immutable argument PyPy 3.9's ioctl makes a raw copy
        # (about 140 bytes a call) that only a major collection frees.
        fcntl.ioctl(transport.socket.fileno(), _SIOCOUTQ, _OUTQ, True)
    except (OSError, ValueError):
        return 0
    return _INT.unpack(_OUTQ)[0]

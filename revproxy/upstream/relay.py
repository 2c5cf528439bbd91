"""Moves a response (or request) body from a producer to a consumer, spooling the difference.

The backend is read at its own speed into a ``Spool`` while the client is slow, so the backend
connection is free as soon as the body is complete; the client is fed as fast as it drains.
When the spool is full (or the route streams without one) the backend itself is paused.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from revproxy.upstream.spool import Spool


@implementer(IPushProducer)
class Relay:
    """Moves a body from a producer (the backend transport) to a consumer (the client's response
    writer), buffering in a Spool when the consumer is slower. It is the IPushProducer registered
    with the consumer.

    ``consumer`` has ``write(bytes)``, ``registerProducer(producer, streaming)`` and
    ``unregisterProducer()``, and calls our ``pauseProducing``/``resumeProducing``.
    ``producer`` has ``pauseProducing()``/``resumeProducing()``. ``spool_factory`` is a zero-arg
    callable returning a ``Spool``, or ``None`` to stream: the backend is then paused whenever
    the consumer pauses us. ``on_complete`` is called once, after ``end()``, when every byte
    has been written to the consumer. ``on_abort`` is called once if the consumer stops us
    (``stopProducing``: the client went away).

    The relay never resumes the producer after ``end()`` or ``abort()``: if it had paused it,
    the owner must resume it before reusing the connection (or close it).
    """

    def __init__(
        self,
        consumer: Any,
        producer: Any,
        spool_factory: Optional[Callable[[], Spool]],
        on_complete: Callable[[], None],
        chunk_size: int = 65536,
        on_abort: Optional[Callable[[], None]] = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._spool_factory = spool_factory
        self._on_complete = on_complete
        self._on_abort = on_abort
        self._chunk_size = chunk_size
        self._spool: Optional[Spool] = None
        # Pieces the spool refused (cap reached) or, when streaming, pieces that arrived while
        # the consumer was paused. Always after every spooled byte.
        self._overflow: Deque[bytes] = deque()
        self._overflow_bytes = 0
        self._paused = False  # the consumer paused us
        self._producer_paused = False  # we paused the producer
        self._draining = False
        self._ended = False
        self._done = False  # completed or aborted
        consumer.registerProducer(self, True)

    def data(self, data: bytes) -> None:
        """Take a body piece from the backend: to the consumer now if it can, else hold it."""
        if self._done or not data:
            return
        if self._ended:
            raise RuntimeError("Relay.data() after end()")
        if not self._paused and not self._draining and self._backlog_empty():
            self._consumer.write(data)  # fast path: no copy, no spool
            return
        self._hold(data)
        self._pump()

    def end(self) -> None:
        """The backend finished the body; completes once everything held has been delivered."""
        if self._ended or self._done:
            return
        self._ended = True
        self._pump()

    def abort(self) -> None:
        """Stop: drop what is held, close the spool, unregister; ``on_complete`` never fires."""
        if self._done:
            return
        self._finish()

    # IPushProducer, called by the consumer.

    def pauseProducing(self) -> None:
        """The consumer is full: hold further data; when streaming, pause the backend too."""
        self._paused = True
        if self._spool_factory is None:
            self._pause_producer()

    def resumeProducing(self) -> None:
        """The consumer drained: feed it what is held, then let the backend go again."""
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The consumer went away: abort and tell the owner through ``on_abort``."""
        if self._done:
            return
        self.abort()
        if self._on_abort is not None:
            self._on_abort()

    # Internals.

    def _backlog_empty(self) -> bool:
        return not self._overflow and (self._spool is None or not self._spool.pending)

    def _hold(self, data: bytes) -> None:
        if self._spool_factory is not None and not self._overflow:
            if self._spool is None:
                self._spool = self._spool_factory()
            if self._spool.write(data):
                return
            self._pause_producer()  # spool cap reached: back-pressure the backend
        self._overflow.append(data)
        self._overflow_bytes += len(data)

    def _pump(self) -> None:
        """Feed the consumer while it is not paused, then settle the producer / completion.

        ``consumer.write`` may call ``pauseProducing`` (or even ``resumeProducing``) before it
        returns; the ``_draining`` guard turns those re-entrant calls into flag changes that
        this loop sees, instead of nested drains.
        """
        if self._draining or self._done:
            return
        self._draining = True
        try:
            while not self._paused and not self._done:
                chunk = self._next_chunk()
                if not chunk:
                    break
                self._consumer.write(chunk)
        finally:
            self._draining = False
        self._settle()

    def _next_chunk(self) -> bytes:
        spool = self._spool
        if spool is not None and spool.pending:
            return spool.read(self._chunk_size)
        if self._overflow:
            piece = self._overflow.popleft()
            self._overflow_bytes -= len(piece)
            return piece
        return b""

    def _settle(self) -> None:
        if self._done or not self._backlog_empty():
            return
        if self._ended:
            self._finish()
            self._on_complete()
        elif self._producer_paused and (self._spool_factory is not None or not self._paused):
            # Resume only once the spool is empty: its file is then truncated and writable
            # again, and the consumer's own buffer covers the backend's round trip.
            self._producer_paused = False
            self._producer.resumeProducing()

    def _pause_producer(self) -> None:
        if not self._producer_paused and not self._ended and not self._done:
            self._producer_paused = True
            self._producer.pauseProducing()

    def _finish(self) -> None:
        self._done = True
        self._overflow.clear()
        self._overflow_bytes = 0
        if self._spool is not None:
            self._spool.close()
        self._consumer.unregisterProducer()

"""Streams a body kept in a file (a stored ``FileBody``, or a ``BodyFill`` being written) to a
response sink, a chunk at a time, as fast as the receiver takes it.

Memory stays bounded whatever the body's size: one chunk read at a time (in the I/O runner,
never in the reactor thread), none while the sink is paused (``IResponseSink``'s producer
protocol, as ``upstream.relay.Relay`` does for an origin's body). Behind a fill it waits for
the writer (``notify``) and ends with it.
"""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

log = Logger(namespace="revproxy.cache")

CHUNK = 256 * 1024


@implementer(IPushProducer)
class BodyStreamer:
    """Writes bytes ``[start, end)`` of ``source`` (``end`` None: to the source's end, which a
    fill learns last) to ``sink``, then ``sink.finish()``; if the source breaks (read error,
    failed fill, shorter than announced), ``sink.abort()``: the receiver sees a broken
    message, never a clean short one. ``start()`` begins; it is the producer registered with
    the sink until it ends."""

    def __init__(self, sink, source, start: int = 0, end=None, chunk: int = CHUNK) -> None:
        self._sink = sink
        self._source = source
        self._pos = start
        self._end = end
        self._chunk = chunk
        self._paused = False
        self._stopped = False
        self._reading = False
        self._pumping = False
        self.done = False

    def start(self) -> None:
        self._sink.registerProducer(self, True)
        self._pump()

    # -- IPushProducer: the sink tells us --------------------------------------------------
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._stopped = True
        self.done = True

    # -- the loop ----------------------------------------------------------------------------
    def _pump(self) -> None:
        """Read and write until paused, waiting for a read or for the writer, or done.
        A loop, not recursion: reads that fire at once (inline I/O) do not grow the stack."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while not (self._paused or self._stopped or self._reading or self.done):
                if not self._step():
                    break
        finally:
            self._pumping = False

    def _step(self) -> bool:
        """One chunk asked for (or the end reached); False when the loop must wait."""
        source = self._source
        end = self._end if self._end is not None else source.length
        if end is not None and self._pos >= end:
            self._finish()
            return False
        if source.failed:
            self._abort("the cached body broke while it was filled")
            return False
        available = len(source)
        if available <= self._pos:
            if source.length is not None and source.length < (end or 0):
                self._abort("the cached body is shorter than announced")
                return False
            self._sink.flush()  # the head (and what came) leaves now, not with the next bytes
            source.notify(self._pump)  # behind the writer: wait for more
            return False
        size = min(self._chunk, available - self._pos)
        if end is not None:
            size = min(size, end - self._pos)
        self._reading = True
        source.read(self._pos, size).addCallbacks(self._got, self._broken)
        return True

    def _got(self, data) -> None:
        self._reading = False
        if self._stopped or self.done:
            return
        if self._source.failed:
            self._abort("the cached body broke while it was filled")
            return
        self._pos += len(data)
        self._sink.write(data)
        if getattr(self._sink, "writing_paused", False):
            self._paused = True  # the sink registered us: it resumes us when drained
        self._pump()

    def _broken(self, failure) -> None:
        self._reading = False
        if self._stopped or self.done:
            return
        log.warn("cached body unreadable, answer aborted: {error}", error=failure.value)
        self._abort("cached body unreadable")

    def _finish(self) -> None:
        self.done = True
        self._sink.unregisterProducer()
        self._sink.finish()

    def _abort(self, reason: str) -> None:
        self.done = True
        self._sink.unregisterProducer()
        self._sink.abort(reason)

"""Response sinks besides the client connection's writer (``IResponseSink``)."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import IResponseSink


@implementer(IResponseSink)
class DiscardSink:
    """The response sink of a background revalidation: what is written is dropped; the
    request is told when the response is complete (``IResponseSink``)."""

    writing_paused = False
    keep_alive = False
    pending_head = None

    def __init__(self):
        self.request = None
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0

    def informational(self, status, reason, headers):
        pass

    def start(self, status, reason, headers, content_length=None):
        self.started = True
        self.status = status

    def start_prepared(self, status, head, content_length):
        self.start(status, b"", (), content_length)

    def write(self, data):
        self.bytes_sent += len(data)

    def flush(self):
        pass

    def finish(self):
        self._end()

    def abort(self, reason):
        self._end()

    def _end(self):
        if not self.finished:
            self.finished = True
            request, self.request = self.request, None
            if request is not None:
                request.response_done()

    def send_continue(self):
        pass

    def start_tunnel(self, upstream):
        upstream.abort()
        self._end()

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass

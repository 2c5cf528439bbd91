"""One member of the load-balancing benchmark: a Twisted site answering after a fixed delay.

Usage:
    python bench/balance_backend.py --port PORT [--delay-ms 2]

* any path but the two below: 200, a 1 KiB body, sent ``--delay-ms`` after the request came
  (``reactor.callLater``, so a slow member costs time, not CPU);
* ``/healthz``: 200 ``ok`` at once (for active health checks);
* ``/count``: ``{"served": N}``, the delayed answers sent so far (``/healthz`` and ``/count``
  are not counted);
* ``SIGUSR1`` toggles a 10x slowdown of the delayed answers.

Listens on 127.0.0.1 only and keeps no access log.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import List, Optional

from twisted.internet import endpoints, reactor
from twisted.web import resource, server

BODY = b"x" * 1023 + b"\n"
SLOWDOWN = 10.0


class Member(resource.Resource):
    """The whole site: delayed 1 KiB answers, ``/healthz`` and ``/count``."""

    isLeaf = True

    def __init__(self, delay: float) -> None:
        resource.Resource.__init__(self)
        self.delay = delay
        self.factor = 1.0  # SLOWDOWN while SIGUSR1 has toggled the slowdown on
        self.served = 0

    def toggle_slowdown(self, signum=None, frame=None) -> None:
        # Only flips a number: safe in a signal handler.
        self.factor = 1.0 if self.factor != 1.0 else SLOWDOWN

    def render_GET(self, request):
        if request.path == b"/healthz":
            return b"ok\n"
        if request.path == b"/count":
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"served": self.served}).encode("ascii")
        request.setHeader(b"content-type", b"application/octet-stream")
        call = reactor.callLater(self.delay * self.factor, self._answer, request)
        # A client gone before the answer: drop the timer, the request is not served.
        request.notifyFinish().addErrback(lambda _: call.cancel() if call.active() else None)
        return server.NOT_DONE_YET

    render_HEAD = render_GET

    def _answer(self, request) -> None:
        request.write(BODY)
        request.finish()
        self.served += 1


class QuietSite(server.Site):
    """A Site that writes no access log line per request."""

    def log(self, request):
        pass


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, listen, and run the reactor until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=2.0, help="answer delay (2 ms)")
    args = parser.parse_args(argv)
    member = Member(args.delay_ms / 1000.0)
    signal.signal(signal.SIGUSR1, member.toggle_slowdown)
    # Backlog 511 as in twisted_server.py: Twisted's default 50 overflows under load.
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, backlog=511,
                                            interface="127.0.0.1")
    endpoint.listen(QuietSite(member))
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

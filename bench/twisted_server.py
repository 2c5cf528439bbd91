"""Twisted servers for the benchmark: ``ReverseProxyResource`` (a baseline) and a static site.

Usage:
    python bench/twisted_server.py rpr PORT UPSTREAM_PORT   # proxy to 127.0.0.1:UPSTREAM_PORT
    python bench/twisted_server.py static PORT DIRECTORY    # backend used when nginx is missing

Both listen on 127.0.0.1 only and keep no access log (nginx runs with ``access_log off`` too).
"""

from __future__ import annotations

import sys

from twisted.internet import endpoints, reactor
from twisted.web import proxy, server, static


class QuietSite(server.Site):
    """A Site that writes no access log line per request."""

    def log(self, request):
        pass


def main(argv: list[str]) -> int:
    """Parse ``argv``, listen, and run the reactor until killed."""
    if len(argv) != 4 or argv[1] not in ("rpr", "static"):
        sys.stderr.write(__doc__)
        return 2
    mode, port = argv[1], int(argv[2])
    if mode == "rpr":
        # path b"" so that /1k.bin is forwarded as /1k.bin
        root = proxy.ReverseProxyResource("127.0.0.1", int(argv[3]), b"")
    else:
        root = static.File(argv[3])
    # Twisted's default backlog of 50 overflows under 50 connections plus churn (SYN retries
    # then show up as 1 s latencies); nginx uses 511.
    endpoint = endpoints.TCP4ServerEndpoint(reactor, port, backlog=511, interface="127.0.0.1")
    endpoint.listen(QuietSite(root))
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

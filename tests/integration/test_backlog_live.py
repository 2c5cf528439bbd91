"""Listen backlog on a real ``twistd -n revproxy``: the socket's queue is the chosen one, and
a burst of connects is accepted at once (Twisted's default of 50 made it take seconds)."""

from __future__ import annotations

import errno
import os
import select
import shutil
import socket
import subprocess
import time

from twisted.internet import defer
from twisted.trial import unittest

from revproxy.server.backlog import system_backlog
from tests.integration.test_twistd import spawn

LISTENING = rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\) \(%s, backlog (\d+)\)"
BURST = 1000


def listen_queue(port):
    """The Send-Q column of ``ss -ltn`` for ``port``: a listening socket's backlog."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], stdout=subprocess.PIPE,
                         timeout=10, check=True).stdout.decode().split()
    return int(out[2])


def burst_connect(port, count, deadline):
    """Start ``count`` non-blocking connects; the number connected within ``deadline`` s."""
    sockets, pending = [], {}
    try:
        for i in range(count):
            s = socket.socket()
            s.setblocking(False)
            # from four loopback addresses: one address would meet max_connections_per_ip
            s.bind(("127.0.0.%d" % (2 + i % 4), 0))
            sockets.append(s)
            code = s.connect_ex(("127.0.0.1", port))
            if code == errno.EINPROGRESS:
                pending[s.fileno()] = s
            elif code != 0:
                raise OSError(code, os.strerror(code))
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        end = time.monotonic() + deadline
        while pending and time.monotonic() < end:
            for fd, _ in poller.poll(max(1, int((end - time.monotonic()) * 1000))):
                s = pending.pop(fd)
                poller.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    pending[fd] = s  # failed: counted as not connected
                    break
        return count - len(pending)
    finally:
        for s in sockets:
            s.close()


class BacklogLiveTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def start(self, endpoint):
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--listen", endpoint,
                                "--upstream", "http://127.0.0.1:1")
        match = yield proc.wait_for(LISTENING % endpoint.replace(".", r"\.").encode())
        return int(match.group(1)), int(match.group(2))

    @defer.inlineCallbacks
    def test_default_backlog_is_the_system_maximum_and_bursts_connect_at_once(self):
        """No backlog configured: the log and the socket show somaxconn; 1000 connects
        started at once all complete within a second (none waits for a SYN retransmit)."""
        port, logged = yield self.start("tcp:0:interface=127.0.0.1")
        self.assertEqual(logged, system_backlog())
        if shutil.which("ss"):
            self.assertEqual(listen_queue(port), system_backlog())
        self.assertEqual(burst_connect(port, BURST, 1.0), BURST)

    @defer.inlineCallbacks
    def test_explicit_backlog_in_the_endpoint_is_used(self):
        port, logged = yield self.start("tcp:0:interface=127.0.0.1:backlog=77")
        self.assertEqual(logged, 77)
        if not shutil.which("ss"):
            raise unittest.SkipTest("no ss to read the socket's backlog")
        self.assertEqual(listen_queue(port), 77)

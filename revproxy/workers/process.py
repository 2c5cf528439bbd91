"""One worker process as the supervisor sees it: its output relayed to the supervisor's log,
its end reported.

A worker runs ``twistd -n`` and logs to its stdout; the supervisor logs each line prefixed
with the worker's slot and pid, so one log (the supervisor's, wherever twistd sends it) has
everything and only one process ever rotates it.
"""

from __future__ import annotations

import re

from twisted.internet import protocol
from twisted.logger import Logger

log = Logger(namespace="revproxy.workers")

MAX_LINE = 64 * 1024  # a longer line is relayed in pieces


class WorkerProcess(protocol.ProcessProtocol):
    """``ended(index, pid, reason)`` is called once when the process is gone."""

    def __init__(self, index, ended, relay=None):
        self.index = index
        self.pid = None
        self._ended = ended
        self._relay = relay if relay is not None else _log_line
        self._pending = {1: b"", 2: b""}

    def connectionMade(self):
        # stdin stays open: the worker stops when it closes (revproxy.workers.compose)
        self.pid = self.transport.pid

    def childDataReceived(self, fd, data):
        buffered = self._pending.get(fd, b"") + data
        *lines, rest = buffered.split(b"\n")
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._pending[fd] = rest
        for line in lines:
            self._relay(self.index, self.pid, line)

    def processEnded(self, reason):
        for fd, rest in self._pending.items():
            if rest:
                self._relay(self.index, self.pid, rest)
        self._pending = {}
        self._ended(self.index, self.pid, reason.value)


_TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ")


def _log_line(index, pid, line):
    """One line of a worker's log, in the supervisor's log (which adds its own time)."""
    line = _TIMESTAMP.sub(b"", line.rstrip(b"\r"), count=1)
    log.info("[worker {index} pid {pid}] {line}", index=index, pid=pid,
             line=line.decode("utf-8", "replace"))


def describe_exit(value) -> str:
    """``exit code N`` or ``killed by signal N`` from a ProcessDone/ProcessTerminated."""
    signal = getattr(value, "signal", None)
    if signal is not None:
        return "killed by signal %d" % signal
    return "exit code %s" % getattr(value, "exitCode", "?")

"""The supervisor's checks before it passes a reload to its workers.

The config check is ``--check`` itself, run as a process with the supervisor's arguments:
whatever ``--check`` verifies (config, balancers, hooks, certificates, IP lists...) is what a
worker will accept, with no second copy of the list to drift; it runs outside the
supervisor's reactor. ``binding_change`` (pure) refuses what cannot change under running
workers: the sockets the supervisor bound and the listeners it serves.
"""

from __future__ import annotations

from twisted.internet import defer, protocol

MAX_OUTPUT = 256 * 1024


class CheckProcess(protocol.ProcessProtocol):
    """Collects a ``--check`` run; ``ended`` fires with ``(exit code, output text)``."""

    def __init__(self):
        self.ended = defer.Deferred()
        self._output = []
        self._size = 0

    def connectionMade(self):
        self.transport.closeStdin()

    def childDataReceived(self, fd, data):
        if self._size < MAX_OUTPUT:
            self._output.append(data)
            self._size += len(data)

    def processEnded(self, reason):
        code = getattr(reason.value, "exitCode", None)
        self.ended.callback((code, b"".join(self._output).decode("utf-8", "replace")))


def binding_change(old, new):
    """None when ``new`` binds what ``old`` binds; else the reason to refuse the reload."""
    if tuple(old.server.listen) != tuple(new.server.listen):
        return ("[server] listen changed: with several workers the listeners are bound once "
                "by the supervisor; restart to change them")
    if tuple(old.admin.listen) != tuple(new.admin.listen):
        return "[admin] listen changed: with several workers, restart to change it"
    if old.server.backlog != new.server.backlog:
        return "[server] backlog changed: with several workers, restart to change it"
    if old.demo != new.demo:
        return "[demo] changed: with several workers the supervisor runs the demo backends; " \
               "restart to change them"
    return None

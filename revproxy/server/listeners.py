"""The listening ports of the process, keyed by role and endpoint description.

Opening is all-or-nothing: ``open()`` listens on every wanted endpoint not open yet and, on the
first failure, closes the ones it just opened and raises ``ListenError`` naming the endpoint
and the reason. That is what makes a failed bind fatal at start-up (the process exits non-zero)
and harmless on reload (the old listeners are untouched).

The endpoint types a config may name (tcp:, tcp6:, ssl:, unix:) listen synchronously: the
Deferred of ``endpoint.listen()`` has fired when it returns. An endpoint that would answer
later is refused rather than waited for, so a bind failure is always known at once.
"""

from __future__ import annotations

from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

log = Logger(namespace="revproxy.service")


class ListenError(Exception):
    """An endpoint could not listen; ``str()`` is one line: the endpoint and why."""

    def __init__(self, description: str, reason: str) -> None:
        self.description = description
        self.reason = reason
        super().__init__("cannot listen on %s: %s" % (description, reason))


class ListenerSet:
    """The open ports, ``key -> IListeningPort``; a key is ``(role, description)``."""

    def __init__(self, reactor, inherited=None):
        self._reactor = reactor
        # key -> adopt(factory) -> port: sockets a worker inherited (revproxy.workers.inherit)
        self._inherited = dict(inherited or {})
        self.ports = {}

    def open(self, wanted):
        """Listen on every entry of ``wanted`` (``key -> (description, endpoint string,
        factory, label)``; the description, as configured, names it in messages) whose key is
        not open yet. Returns ``{key: port}`` of the new ports, not yet part of
        the set (``adopt`` them); raises ``ListenError`` after closing them on any failure."""
        opened = {}
        try:
            for key, (description, endpoint, factory, label) in wanted.items():
                if key in self.ports:
                    continue
                adopt = self._inherited.get(key)
                if adopt is not None:
                    opened[key] = adopt(factory)
                else:
                    opened[key] = self._listen(description, endpoint, factory, label)
        except ListenError:
            self.close(opened.values())
            raise
        return opened

    def adopt(self, opened):
        """Make the ports returned by ``open`` part of the set."""
        self.ports.update(opened)

    def close_except(self, keys):
        """Stop listening on every port whose key is not in ``keys``; returns their keys.
        Connections already accepted on them are not touched."""
        gone = [key for key in self.ports if key not in keys]
        self.close([self.ports.pop(key) for key in gone])
        for role, description in gone:
            log.info("stopped listening on {desc} ({role})", desc=description, role=role)
        return gone

    def close_all(self):
        """Stop listening everywhere; a list of Deferreds, one per port."""
        ports, self.ports = list(self.ports.values()), {}
        return self.close(ports)

    @staticmethod
    def close(ports):
        return [port.stopListening() for port in ports]

    def _listen(self, description, endpoint, factory, label):
        try:
            d = serverFromString(self._reactor, endpoint).listen(factory)
        except Exception as e:  # a bad ssl: key file, an unknown option...: say which, no traceback
            raise ListenError(description, _reason(e)) from None
        outcome = []
        d.addBoth(outcome.append)
        if not outcome:
            d.cancel()
            raise ListenError(description, "the endpoint did not listen at once; "
                                           "use tcp:, tcp6:, ssl: or unix:")
        result = outcome[0]
        if hasattr(result, "getErrorMessage"):  # a Failure
            raise ListenError(description, _reason(result.value))
        log.info("listening on {addr} ({desc}{label})", addr=result.getHost(), desc=description,
                 label=label)
        return result


def _reason(error) -> str:
    """The useful part of a listen error: ``CannotListenError``'s socket error, else its text."""
    inner = getattr(error, "socketError", None)
    if inner is not None:
        return getattr(inner, "strerror", None) or str(inner)
    return str(error) or error.__class__.__name__

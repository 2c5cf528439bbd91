"""The whole proxy on a fake reactor: clients and backends are StringTransports, time is a Clock.

``World`` builds the real service from a config dict on a ``MemoryReactorClock``; ``client()``
opens a client connection; ``accept_backend()`` completes the proxy's newest outgoing connect
and returns the backend side, whose ``value()`` shows what the proxy sent.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from revproxy.config.load import parse_config
from revproxy.server.protocol import ProxyFactory
from revproxy.tap import build


class Transport(StringTransport):
    """A StringTransport that records aborts and producer pauses."""

    def __init__(self, peer=("127.0.0.1", 40000)):
        StringTransport.__init__(self, peerAddress=IPv4Address("TCP", peer[0], peer[1]))
        self.aborted = False
        self.reading_paused = False
        self.nodelay = False

    def abortConnection(self):
        self.aborted = True
        self.disconnecting = True

    def pauseProducing(self):
        self.reading_paused = True

    def resumeProducing(self):
        self.reading_paused = False

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled

    def take(self):
        data = self.value()
        self.clear()
        return data


def config_dict(members=("http://10.0.0.1:8000",), **sections):
    data = {
        "server": {"listen": ["tcp:0:interface=127.0.0.1"]},
        "logging": {"access_log": "", "error_log": "-"},
        "pools": {"main": {"members": list(members)}},
    }
    for name, values in sections.items():
        if name == "pool":
            data["pools"]["main"].update(values)
        elif name == "routes":
            data["routes"] = values
        else:
            data.setdefault(name, {}).update(values)
    return data


class World:
    def __init__(self, testcase, data=None, access=None):
        data = data or config_dict()
        data.setdefault("buffering", {}).setdefault("temp_dir", testcase.mktemp())
        self._temp_dir = data["buffering"]["temp_dir"]
        self.reactor = MemoryReactorClock()
        self.config = parse_config(data, "<test>")
        self.service = build(self.config, self.reactor, randbytes=lambda n: b"\x02" * n,
                             batch_writes=False)
        self.runtime = self.service.runtime
        if access is not None:
            self.runtime.access_log.log = access.append
        for backend in self.runtime.backends.values():
            backend.set_addresses([_split(url) + (backend.config.weight_of(url),)
                                   for url in backend.config.members])
        self._connects = 0

    def start(self):
        """Start the service (listeners on the fake reactor, resolvers, watchers)."""
        self.service.startService()

    def reload(self, data):
        """Reload with the config ``data`` (same temp dir as at start); True when applied."""
        data.setdefault("buffering", {}).setdefault("temp_dir", self._temp_dir)
        return self.service.reloader.reload(lambda: parse_config(data, "<test>"))

    def client(self, peer=("127.0.0.1", 40000)):
        proto = ProxyFactory(self.service._holder).buildProtocol(None)
        transport = Transport(peer)
        proto.makeConnection(transport)
        return proto, transport

    @property
    def pending_connects(self):
        return len(self.reactor.tcpClients) - self._connects

    def accept_backend(self):
        """Complete the oldest connect attempt not yet completed; return (protocol, transport)."""
        host, port, factory, timeout, bind = self.reactor.tcpClients[self._connects]
        self._connects += 1
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = Transport((host, port))
        proto.makeConnection(transport)
        return proto, transport

    def fail_connect(self, reason):
        host, port, factory, timeout, bind = self.reactor.tcpClients[self._connects]
        self._connects += 1
        from twisted.python.failure import Failure

        factory.clientConnectionFailed(None, Failure(reason))


def _split(url):
    hostport = url.split("//", 1)[1]
    host, _, port = hostport.rpartition(":")
    return host, int(port)

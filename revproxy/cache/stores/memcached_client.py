"""The memcached client under the memcached store: a consistent-hash ring over the servers,
a few ``MemCacheProtocol`` connections per server, reconnection with back-off, and
operations (each on a server named by the caller) that never fail and never hang.

A server that is down (no connection up), slow (no answer within ``timeout``) or broken (an
error reply, a dropped connection) gives the operation's "nothing" result: None for a
value, False for a write. The client counts those; the pools log a server going down and
coming back, not every failed operation.
"""

from __future__ import annotations

import bisect
import hashlib
import random

from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger
from twisted.protocols.memcache import MemCacheProtocol

log = Logger(namespace="revproxy.cache")

RECONNECT_FIRST = 0.1  # seconds before the first reconnection; doubles on each failure
VNODES = 160  # points per server on the ring: spread within a few percent


def hash64(data: bytes) -> int:
    """A stable 64-bit hash (blake2b), the same on every machine and interpreter."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing: each node (bytes, e.g. b"host:port") owns ``vnodes`` points on a
    64-bit circle; a key goes to the owner of the first point at or after its hash. Adding
    a node to N moves about 1/(N+1) of the keys, all of them to the new node."""

    def __init__(self, nodes, vnodes: int = VNODES) -> None:
        nodes = list(nodes)
        if not nodes or len(set(nodes)) != len(nodes):
            raise ValueError("a hash ring needs distinct nodes, not %r" % (nodes,))
        points = sorted((hash64(b"%s#%d" % (node, i)), node)
                        for node in nodes for i in range(vnodes))
        self.nodes = tuple(nodes)
        self._hashes = [h for h, _ in points]
        self._owners = [node for _, node in points]

    def node_for(self, key: bytes) -> bytes:
        i = bisect.bisect_left(self._hashes, hash64(key))
        return self._owners[i if i < len(self._owners) else 0]


class _PooledProtocol(MemCacheProtocol):
    """A ``MemCacheProtocol`` that tells its pool when it is up and when it is lost."""

    def __init__(self, pool, slot) -> None:
        MemCacheProtocol.__init__(self, pool.timeout)
        self.pool = pool
        self.slot = slot
        # TimeoutMixin would use the global reactor; ours may be a test clock.
        self.callLater = pool.reactor.callLater

    def connectionMade(self):
        self.pool.slot_up(self.slot, self)

    def connectionLost(self, reason=protocol.connectionDone):
        self.setTimeout(None)  # MemCacheProtocol leaves its response timer running
        MemCacheProtocol.connectionLost(self, reason)
        self.pool.slot_down(self.slot)


class _Slot(protocol.ClientFactory):
    """One connection of a pool: the factory for its attempts, and its state."""

    noisy = False

    def __init__(self, pool) -> None:
        self.pool = pool
        self.connector = None
        self.proto = None
        self.retry = None
        self.failures = 0

    def buildProtocol(self, addr):
        return _PooledProtocol(self.pool, self)

    def clientConnectionFailed(self, connector, reason):
        self.pool.slot_down(self, reason)


class ServerPool:
    """``size`` connections to one memcached server, each reconnected after a loss or a
    failed attempt with exponential back-off (``RECONNECT_FIRST`` doubling up to
    ``reconnect_max`` seconds, times a jitter in [0.5, 1) from ``rng``)."""

    def __init__(self, reactor, host: str, port: int, size: int, timeout: float, rng,
                 reconnect_max: float = 30.0) -> None:
        self.reactor = reactor
        self.host, self.port = host, port
        self.timeout = timeout
        self.reconnect_max = reconnect_max
        self._rng = rng
        self._slots = [_Slot(self) for _ in range(size)]
        self._ready = []
        self._next = 0
        self._closed = False
        self._lost_waiters = []
        self.state = "new"

    def start(self) -> None:
        for slot in self._slots:
            self._connect(slot)

    def _connect(self, slot) -> None:
        slot.retry = None
        slot.connector = self.reactor.connectTCP(self.host, self.port, slot,
                                                 timeout=self.timeout)

    def slot_up(self, slot, proto) -> None:
        if self._closed:
            proto.transport.loseConnection()
            return
        slot.proto, slot.failures = proto, 0
        self._ready.append(proto)
        if self.state != "up":
            log.info("memcached {server} up", server=self.name)
            self.state = "up"

    def slot_down(self, slot, reason=None) -> None:
        if slot.proto is not None:
            self._ready.remove(slot.proto)
            slot.proto = None
        if self._closed:
            self._fire_lost()
            return
        if not self._ready and self.state != "down":
            log.warn("memcached {server} down: {why}", server=self.name,
                     why=reason.getErrorMessage() if reason is not None else "connection lost")
            self.state = "down"
        delay = min(self.reconnect_max, RECONNECT_FIRST * 2 ** min(slot.failures, 30))
        slot.failures += 1
        slot.retry = self.reactor.callLater(delay * (0.5 + self._rng.random() / 2),
                                            self._connect, slot)

    @property
    def name(self) -> str:
        return "%s:%d" % (self.host, self.port)

    @property
    def up(self) -> bool:
        return bool(self._ready)

    def protocol(self):
        """A connected protocol (round robin), or None when none is up."""
        if not self._ready:
            return None
        self._next = (self._next + 1) % len(self._ready)
        return self._ready[self._next]

    def close(self):
        """Stop reconnecting and drop every connection; a Deferred firing once all are lost."""
        self._closed = True
        stopped = False
        for slot in self._slots:
            if slot.retry is not None and slot.retry.active():
                slot.retry.cancel()
            slot.retry = None
            if slot.proto is None and _connecting(slot.connector):
                slot.connector.stopConnecting()
                stopped = True
        for proto in list(self._ready):
            proto.transport.loseConnection()
        d = defer.Deferred()
        if stopped:
            # An attempt stopped mid-way still has a zero-delay call of its own pending;
            # fire after it, so a closed pool leaves nothing in the reactor.
            d.addCallback(lambda _: task.deferLater(self.reactor, 0, lambda: None))
        self._lost_waiters.append(d)
        self._fire_lost()
        return d

    def _fire_lost(self) -> None:
        if self._ready:
            return
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)


def _connecting(connector) -> bool:
    return getattr(connector, "state", None) == "connecting"


class MemcachedClient:
    """memcached operations on the servers ``[(host, port), ...]``. Each operation names
    the server (its *node*, b"host:port") it goes to; ``node_for(name)`` is the ring's
    choice. Every method returns a Deferred that never fails and fires within
    ``timeout`` seconds."""

    def __init__(self, reactor, servers, connections_per_server: int = 2,
                 timeout: float = 2.0, rng=None, reconnect_max: float = 30.0) -> None:
        self._reactor = reactor
        self.timeout = timeout
        rng = rng if rng is not None else random.SystemRandom()
        self._pools = {}
        for host, port in servers:
            pool = ServerPool(reactor, host, port, connections_per_server, timeout, rng,
                              reconnect_max)
            self._pools[pool.name.encode("ascii")] = pool
        self._ring = HashRing(list(self._pools))
        self.nodes = self._ring.nodes
        self.errors = self.timeouts = self.unavailable = 0
        for pool in self._pools.values():
            pool.start()

    def node_for(self, name: bytes) -> bytes:
        """The server the ring gives ``name``."""
        return self._ring.node_for(name)

    def _guard(self, d, default):
        if not d.called:
            d.addTimeout(self.timeout, self._reactor)
        return d.addErrback(self._failed, default)

    def _failed(self, failure, default):
        if failure.check(defer.TimeoutError, error.TimeoutError):
            self.timeouts += 1
        else:
            self.errors += 1
        return default

    def _run(self, node, call, default):
        proto = self._pools[node].protocol()
        if proto is None:
            self.unavailable += 1
            return defer.succeed(default)
        return self._guard(call(proto), default)

    def get_multi(self, node, names):
        """A dict of every name in ``names`` to its value on ``node`` (bytes), or None
        when missing or unreachable; one ``get`` command."""
        found = dict.fromkeys(names)
        d = self._run(node, lambda p: p.getMultiple(list(found)), None)
        return d.addCallback(_merge, found)

    def set(self, node, name, value, expire=0):
        """True once stored, else False."""
        return self._run(node, lambda p: p.set(name, value, expireTime=expire), False)

    def add(self, node, name, value, expire=0):
        """True once stored, False when the name exists already (or on failure)."""
        return self._run(node, lambda p: p.add(name, value, expireTime=expire), False)

    def delete(self, node, name):
        """True when deleted, False when it was not there (or on failure)."""
        return self._run(node, lambda p: p.delete(name), False)

    def incr(self, node, name, by):
        """The new value; False when the name does not exist; None on failure."""
        return self._run(node, lambda p: p.increment(name, by), None)

    def stats(self):
        return {"servers": len(self._pools),
                "servers_up": sum(1 for p in self._pools.values() if p.up),
                "errors": self.errors, "timeouts": self.timeouts,
                "unavailable": self.unavailable}

    def close(self):
        """Drop every connection for good; a Deferred firing once they are all closed."""
        return defer.gatherResults([p.close() for p in self._pools.values()]).addCallback(
            lambda _: None)


def _merge(result, found):
    if result is not None:
        for name, (_, value) in result.items():
            found[name] = value
    return found

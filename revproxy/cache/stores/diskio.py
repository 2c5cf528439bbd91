"""Where the disk store's file I/O runs: inline (tests, ``threads = 0``) or in a bounded
thread pool, so that a slow disk never stalls the reactor.

An *I/O runner* has ``run(f, *args)``, returning a Deferred that fires in the reactor thread
with ``f(*args)``'s result (or its failure), and ``stop()``. ``f`` must touch nothing the
reactor thread uses: it gets paths and bytes, returns bytes or values; the store's index
stays in the reactor thread and needs no lock.

``FileQueue`` orders the operations on one file (write, then unlink, then write again...)
while operations on different files run in parallel.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool


class InlineIO:
    """Runs each call at once in the calling thread: the Deferred has already fired.
    Deterministic (unit tests) but blocking: the reactor waits for the disk."""

    threaded = False

    @staticmethod
    def run(f, *args):
        return defer.execute(f, *args)

    def stop(self):
        pass


class ThreadedIO:
    """Runs calls in a pool of at most ``threads`` threads (started lazily by Twisted's
    ``ThreadPool``), results delivered through ``reactor.callFromThread``. ``stop`` waits
    for the calls in progress and joins the threads; it is also run at reactor shutdown."""

    threaded = True

    def __init__(self, reactor, threads: int) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(0, threads, name="revproxy-disk-cache")
        self._pool.start()
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)

    def run(self, f, *args):
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _stop_pool(self):
        if self._pool.started:
            self._pool.stop()

    def stop(self):
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        self._stop_pool()


def io_for(reactor, threads: int):
    """A ``ThreadedIO`` of ``threads`` threads when ``threads`` > 0 and ``reactor`` can run
    threads (``callFromThread``); else ``InlineIO`` (a ``task.Clock`` in tests)."""
    if threads > 0 and hasattr(reactor, "callFromThread") and hasattr(
            reactor, "addSystemEventTrigger"):
        return ThreadedIO(reactor, threads)
    return InlineIO()


class FileQueue:
    """Runs operations through an I/O runner, one at a time per file name, in call order.

    ``submit(name, f, *args)`` returns a Deferred of ``f(*args)``'s outcome; ``f`` starts
    once every earlier operation on ``name`` has ended. ``idle()`` is a Deferred firing once
    every operation submitted so far has ended."""

    def __init__(self, io) -> None:
        self._io = io
        self._tails = {}  # name -> Deferred firing when its last queued operation ends

    def __len__(self) -> int:
        return len(self._tails)

    def submit(self, name, f, *args):
        result = defer.Deferred()
        tail = defer.Deferred()

        def start(_=None):
            self._io.run(f, *args).addBoth(finish)

        def finish(outcome):
            if self._tails.get(name) is tail:
                del self._tails[name]
            # the result first: whoever waits for ``idle`` sees the outcomes handled
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
            tail.callback(None)

        previous = self._tails.get(name)
        self._tails[name] = tail
        if previous is None:
            start()
        else:
            previous.addCallback(start)
        return result

    def idle(self):
        tails = list(self._tails.values())
        if not tails:
            return defer.succeed(None)
        return defer.DeferredList(tails).addCallback(lambda _: None)

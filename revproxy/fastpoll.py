"""The epoll reactor's event loop without the per-event log context.

Twisted's ``EPollReactor.doPoll`` dispatches every I/O event through
``log.callWithLogger(selectable, ...)``: it asks the selectable for its ``logPrefix()``,
pushes a ``{"system": prefix}`` context, calls the handler, pops the context. That context
only matters to *legacy* ``twisted.python.log`` calls made inside the handler (their
``system`` field); revproxy logs through ``twisted.logger.Logger`` with namespaces, which
does not read it. It costs 3.2 µs per event on CPython here (a direct call: 0.14 µs), and a
proxied request is several events (client read, backend read, writes that wait).

``install(reactor)`` replaces the reactor's ``doIteration`` (the one ``mainLoop`` calls)
with ``do_poll``: the same epoll wait and dispatch through ``_doReadOrWrite`` (which still
catches a handler's exception, logs it and drops that connection, as before), without the
context; an exception escaping ``_doReadOrWrite`` itself is logged with the selectable's
prefix, as ``callWithLogger`` does, and the loop goes on. Only a reactor that is exactly
Twisted's ``EPollReactor`` is changed (any other reactor, or a subclass with its own
``doPoll``, keeps its loop). ``REVPROXY_LOG_CONTEXT=1`` in the environment keeps Twisted's
loop (legacy log lines then carry the connection's prefix again, for debugging).

Measured with ``bench/run.py`` (see bench/README.md, "The event loop's log context").
"""

from __future__ import annotations

import errno
import os
import types

from twisted.python import log

ENV_KEEP = "REVPROXY_LOG_CONTEXT"


def do_poll(self, timeout):
    """``EPollReactor.doPoll`` without ``callWithLogger`` (bound to the reactor)."""
    if timeout is None:
        timeout = -1  # wait indefinitely
    selectables = self._selectables
    try:
        events = self._poller.poll(timeout, len(selectables))
    except OSError as e:
        if e.errno == errno.EINTR:
            return
        raise
    drdw = self._doReadOrWrite
    for fd, event in events:
        selectable = selectables.get(fd)
        if selectable is None:
            continue
        try:
            drdw(selectable, fd, event)
        except KeyboardInterrupt:
            raise
        except BaseException:
            log.err(system=_prefix(selectable))


def _prefix(selectable) -> str:
    try:
        return selectable.logPrefix()
    except Exception:
        return "(buggy logPrefix method)"


def install(reactor, environ=os.environ) -> bool:
    """Give ``reactor`` the loop above; True when it did (see the module's conditions)."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # no epoll on this platform
        return False
    if type(reactor) is not EPollReactor or environ.get(ENV_KEEP) == "1":
        return False
    if getattr(reactor.doIteration, "__func__", None) is do_poll:
        return True
    reactor.doIteration = types.MethodType(do_poll, reactor)
    return True

"""Process signals as reactor calls: SIGHUP reloads, SIGUSR1 reopens log files.

A Python signal handler runs in the main thread between two bytecodes, possibly in the middle
of the reactor's own work; so the handler only asks the reactor to run the action on its next
turn (``callFromThread`` also wakes a reactor sleeping in ``epoll_wait``), as Twisted's own
SIGINT handler does. The handlers must be installed before the process listens: SIGHUP's
default action terminates the process.
"""

from __future__ import annotations

import signal


class SignalHandlers:
    """Installs ``{signal number: action}``; ``action()`` then runs in the reactor.

    A handler already installed for the same signal (twistd rotates its ``--logfile`` on
    SIGUSR1) keeps being called, after ours is scheduled.
    """

    def __init__(self, reactor, actions):
        self._reactor = reactor
        self._actions = dict(actions)
        self._previous = {}

    def install(self):
        for number, action in self._actions.items():
            previous = signal.getsignal(number)
            self._previous[number] = previous
            signal.signal(number, self._handler(action, previous))

    def uninstall(self):
        previous, self._previous = self._previous, {}
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def _handler(self, action, previous):
        reactor = self._reactor

        def handle(number, frame):
            reactor.callFromThread(action)
            if callable(previous):
                previous(number, frame)

        return handle

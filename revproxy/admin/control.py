"""``AdminControl``: what the admin API reaches beyond the current runtime.

One per process, made by ``tap.build``: the ``RuntimeHolder`` (the runtime current at each
call), the process-wide ``RequestRecorder``, the ``Reloader`` (set once the service exists),
the wall clock for ``/api/stats`` ``time``, and the Prometheus registry of this process.
"""

from __future__ import annotations

import time


class AdminControl:
    reloader = None  # revproxy.server.reload.Reloader, set by tap.build

    def __init__(self, holder, recorder=None, wall_clock=time.time):
        self.holder = holder
        self.recorder = recorder
        self.wall_clock = wall_clock
        self._registry = None

    @property
    def registry(self):
        """The ``CollectorRegistry`` of this process (made on first use)."""
        if self._registry is None:
            from revproxy.admin.metrics import registry_for

            self._registry = registry_for(self)
        return self._registry

    def generation(self) -> int:
        """Configurations applied by reloads since start-up."""
        return self.reloader.generation if self.reloader is not None else 0

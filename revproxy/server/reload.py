"""Reload (SIGHUP): re-read the config, validate it whole, then swap, or refuse and keep it all.

The sequence, all in the reactor thread:

1. ``load()`` reads the file again with the command-line overrides re-applied;
2. ``build_runtime(config, shared, previous)`` checks everything start-up checks (balancer
   names and options, cache store options, temp dir, log files) while building the new
   ``Runtime``; it reuses unchanged pools, cache and store, and modifies nothing running;
3. ``service.switch(runtime)`` opens the new listeners (one that cannot listen refuses the
   whole reload: the ones just opened are closed), swaps the current runtime, closes the
   listeners no longer named and moves the background tasks to the new pools and store;
4. the process-wide settings follow (connection ceiling, spool totals, error log).

A refusal logs the file, key and reason and changes nothing. Requests in flight finish on the
runtime they began with; a keep-alive connection's next request takes the new one.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.config.diff import describe_changes
from revproxy.config.errors import ConfigError
from revproxy.server.listeners import ListenError

log = Logger(namespace="revproxy.reload")


class Reloader:
    """``reload()`` applies the config ``load()`` returns now; True when it was applied."""

    def __init__(self, service, shared, load, build_runtime):
        self._service = service
        self._shared = shared
        self._load = load
        self._build_runtime = build_runtime
        self.generation = 0  # configurations applied since start-up
        self.last_error = None  # why the last reload was refused (None: it was applied)

    def reload(self, load=None):
        """Reload from ``load`` (default: the loader given at construction)."""
        service = self._service
        if not service.running or self._shared.stats.shutting_down:
            log.warn("reload ignored: the proxy is not running")
            self.last_error = "the proxy is not running"
            return False
        old = service.runtime
        log.info("reloading the configuration ({source})", source=old.config.source)
        try:
            config = (load or self._load)()
            runtime = self._build_runtime(config, self._shared, old)
        except ConfigError as e:
            return self._refused(str(e))
        except Exception as e:  # a plugin's bug must not take the running proxy down
            log.failure("reload: unexpected error while building the new configuration")
            return self._refused("%s: %s" % (e.__class__.__name__, e))
        try:
            service.switch(runtime)
        except ListenError as e:
            self._discard(runtime, old)
            return self._refused(str(e))
        self._shared.apply(config)
        self.generation += 1
        self.last_error = None
        changes = describe_changes(old.config, config)
        for line in changes:
            log.info("reload: {change}", change=line)
        log.info("reload done (generation {g}, {source}): {n} changes", g=self.generation,
                 source=config.source, n=len(changes))
        return True

    def _refused(self, why):
        self.last_error = why
        log.error("reload refused: {why}; the running configuration stays", why=why)
        return False

    @staticmethod
    def _discard(runtime, old):
        """Release what a refused runtime built and nobody else uses: its new cache store."""
        cache = runtime.cache
        if cache is not None and (old.cache is None or cache.store is not old.cache.store):
            cache.store.close()

"""The background tasks that follow a pool or a cache store: resolver, health checker, agent
poller, store sweeper. Each has ``start()`` and ``stop()``; a reload stops those of pools and
stores that went away and starts those of new ones."""

from __future__ import annotations

from twisted.logger import Logger

log = Logger(namespace="revproxy.service")


class ResolverTask:
    """A ``MemberResolver`` as a task: its start Deferred's failure is logged, not lost."""

    def __init__(self, resolver):
        self.resolver = resolver

    def start(self):
        self.resolver.start().addErrback(lambda f: log.failure("resolver", f))

    def stop(self):
        self.resolver.stop()

    def inherit(self, previous):
        """Take over the last known addresses of ``previous`` (a ResolverTask)."""
        self.resolver.inherit(previous.resolver)


def resolver_task(reactor, backend):
    """The task keeping ``backend``'s addresses current from its config's members."""
    from revproxy.upstream.resolve import MemberResolver

    return ResolverTask(MemberResolver(reactor, reactor.nameResolver, backend))


def pool_watchers(reactor, backend):
    """Active health checker and agent poller of one ``BalancedPool``, as configured."""
    from revproxy.balancing.agent import AgentPoller
    from revproxy.balancing.probe import ActiveChecker

    config = backend.config
    members = lambda: backend.members  # noqa: E731 (read at each round: membership changes)
    watchers = []
    if config.health is not None:
        watchers.append(ActiveChecker(reactor, reactor, members, config.health,
                                      lambda member, ok, why: backend.probe_result(member, ok, why)))
    if config.agent_port:
        # an agent listens on a TCP port of the member's address: Unix-socket members have none
        tcp_members = lambda: [m for m in backend.members if not getattr(m, "unix", False)]  # noqa: E731
        watchers.append(AgentPoller(reactor, reactor, tcp_members, config.agent_port,
                                    config.agent_interval, backend.report))
    return watchers


def cache_watchers(reactor, cache):
    """The sweeper of ``cache``'s store (none when the cache is off)."""
    if cache is None:
        return []
    from revproxy.cache.engine import StoreSweeper

    return [StoreSweeper(reactor, cache.store)]

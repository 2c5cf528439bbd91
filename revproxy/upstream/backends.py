"""A named pool of backend members, each with its own connection pool."""

from __future__ import annotations

from revproxy.balancing.roundrobin import RoundRobin
from revproxy.upstream.pool import MemberPool


class Backend:
    """The members of one configured pool. Addresses come from ``upstream.resolve``."""

    def __init__(self, reactor, pool_config, parser_limits, deadlines, outbox, balancer=None):
        self.name = pool_config.name
        self.config = pool_config
        self._reactor = reactor
        self._parser_limits = parser_limits
        self._deadlines = deadlines
        self._outbox = outbox
        self._balancer = balancer or RoundRobin()
        self.members = []  # MemberPool, in address order

    def set_addresses(self, addresses):
        """Make the members exactly ``addresses`` (``(ip, port)`` pairs), keeping the
        connection pools of members that stay; removed members close their idle connections."""
        current = {(m.host, m.port): m for m in self.members}
        members = []
        for address in addresses:
            member = current.pop(tuple(address), None)
            if member is None:
                member = MemberPool(
                    self._reactor, address[0], address[1], self.config, self._parser_limits,
                    self._deadlines, self._outbox,
                )
            members.append(member)
        for gone in current.values():
            gone.close_idle()
        self.members = members

    def pick(self):
        """The member for the next request, or None when the pool has none."""
        return self._balancer.pick(self.members)

    def close_idle(self):
        for member in self.members:
            member.close_idle()

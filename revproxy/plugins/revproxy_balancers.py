"""The built-in balancing policies, offered as ``IBalancerFactory`` plugins.

Discovery imports this module, so it stays light: a policy's module is imported only
when a pool uses it.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import IBalancerFactory


@implementer(IPlugin, IBalancerFactory)
class BuiltinBalancerFactory:
    """Builds the policy class ``class_path`` ("module:Class") with ``(options, random)``."""

    def __init__(self, name, description, class_path):
        self.name = name
        self.description = description
        self.class_path = class_path

    def build(self, options, random):
        module_name, _, class_name = self.class_path.partition(":")
        policy = getattr(import_module(module_name), class_name)
        return policy(options, random)

    def __repr__(self):
        return "<built-in balancer %r>" % (self.name,)


round_robin = BuiltinBalancerFactory(
    "round-robin", "members in turn",
    "revproxy.balancing.roundrobin:RoundRobinBalancer",
)
weighted_round_robin = BuiltinBalancerFactory(
    "weighted-round-robin", "members in turn, in proportion to weight (nginx smooth WRR)",
    "revproxy.balancing.weighted:WeightedRoundRobinBalancer",
)
least_connections = BuiltinBalancerFactory(
    "least-connections", "fewest requests in flight per unit of weight",
    "revproxy.balancing.leastconn:LeastConnectionsBalancer",
)
peak_ewma = BuiltinBalancerFactory(
    "peak-ewma", "best of two random members by response time x load (options: default_rtt)",
    "revproxy.balancing.ewma:PeakEwmaBalancer",
)
consistent_hash = BuiltinBalancerFactory(
    "consistent-hash", "hash ring on client-ip, path, a header or a cookie (options: key, vnodes)",
    "revproxy.balancing.hashing:ConsistentHashBalancer",
)

BUILTINS = (round_robin, weighted_round_robin, least_connections, peak_ewma, consistent_hash)

"""The example plugins, as twisted.plugin finds them: factories only (each imports its
code in ``build``, so scanning the plugins stays cheap). No __init__.py in revproxy/ or
revproxy/plugins/ here: this directory joins revproxy's own plugin package."""

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import (
    IBalancerFactory, ICacheStoreFactory, IFirewallRuleFactory, IRequestHookFactory,
)


@implementer(IPlugin, IBalancerFactory)
class _Balancer:
    name = "example-weighted-random"
    description = "a random draw weighted by the members' weights (example plugin)"

    def build(self, options, random):
        from revproxy_examples.balancer import build
        return build(options, random)


@implementer(IPlugin, ICacheStoreFactory)
class _Store:
    name = "example-ttl-cap"
    description = "memory store keeping values at most max_ttl seconds (example plugin)"

    def build(self, options, reactor):
        from revproxy_examples.store import build
        return build(options, reactor)


@implementer(IPlugin, IRequestHookFactory)
class _Hook:
    name = "example-maintenance"
    description = "503 + Retry-After under some path prefixes (example plugin)"

    def build(self, options, reactor):
        from revproxy_examples.hook import build
        return build(options, reactor)


@implementer(IPlugin, IFirewallRuleFactory)
class _FirewallRule:
    name = "example-json-depth"
    description = "refuses JSON bodies nested deeper than max_depth (example plugin)"

    def build(self, options, reactor):
        from revproxy_examples.firewall_rule import build
        return build(options, reactor)


example_balancer = _Balancer()
example_store = _Store()
example_hook = _Hook()
example_firewall_rule = _FirewallRule()

"""``example-json-depth``: refuse a JSON request body nested deeper than ``max_depth``
(arrays and objects inside each other), the shape of a parser-exhaustion attack; any other
request is no objection."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.firewall.verdicts import allow, deny
from revproxy.interfaces import IFirewallRule


def depth(value, limit: int) -> int:
    """How deeply ``value`` nests containers, counting at most ``limit + 1`` (iterative:
    no recursion limit to hit, and it stops as soon as the limit is passed)."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, (list, dict)))
    return deepest


@implementer(IFirewallRule)
class JSONDepthRule:
    name = "example-json-depth"

    def __init__(self, max_depth: int, status: int):
        self.max_depth = max_depth
        self.status = status

    def evaluate(self, request):
        document = request.json  # parsed body, or None (no JSON, or it does not parse)
        if document is not None and depth(document, self.max_depth) > self.max_depth:
            return deny(self.status, "JSON body nested deeper than %d" % self.max_depth)
        return allow()


def build(options, reactor):
    """``max_depth`` (integer >= 1, default 20), ``status`` (4xx, default 400)."""
    options = dict(options)
    max_depth = options.pop("max_depth", 20)
    status = options.pop("status", 400)
    if options:
        raise ValueError("unknown options: %s" % ", ".join(sorted(options)))
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError("max_depth: expected an integer >= 1, not %r" % (max_depth,))
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 499:
        raise ValueError("status: expected a 4xx status, not %r" % (status,))
    return JSONDepthRule(max_depth, status)

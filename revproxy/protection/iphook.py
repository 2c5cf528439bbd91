"""The built-in ``request_head`` hook of route-scoped IP lists: 403 for a refused client.

``revproxy.tap`` puts it before the ``[[hooks]]`` plugins, and only when some list is scoped
to a route, so a config without route lists pays nothing per request.
"""

from __future__ import annotations

from revproxy.pipeline.hooks import Answer, RequestHook


class IPListHook(RequestHook):
    """Answers 403 (the proxy's short text) when the route's IP lists refuse the client."""

    name = "ip-lists"

    def __init__(self, access):
        self._access = access  # revproxy.protection.iplists.IPAccess

    def request_head(self, ctx):
        peer = ctx.peer
        reason = self._access.route_refusal(peer.listener, ctx.route.name, peer.client_ip)
        if reason is None:
            return None
        return Answer(403, reason=reason)

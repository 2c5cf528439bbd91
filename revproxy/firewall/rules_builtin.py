"""The built-in Python firewall rules: ``deny_paths`` and ``deny_header``.

Small and complete, so they double as examples of ``IFirewallRule``.
"""

from __future__ import annotations

import re

from zope.interface import implementer

from revproxy.firewall.verdicts import ALLOW, deny, score
from revproxy.interfaces import IFirewallRule


def _options(options, known):
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError("unknown option %r; known: %s" % (unknown[0], ", ".join(known)))


def _status(options):
    status = options.get("status", 403)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ValueError("status: expected an HTTP status from 400 to 599")
    return status


def _points(options):
    points = options.get("score", 0)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise ValueError("score: expected an integer >= 0 (0: deny instead)")
    return points


def _strings(options, key):
    value = options.get(key, "")
    items = [v for v in value.split(",")] if isinstance(value, str) else None
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError("%s: expected a comma-separated list of values" % key)
    return tuple(v.strip() for v in items)


@implementer(IFirewallRule)
class DenyPaths:
    """Deny (or score) requests whose decoded path starts with one of ``prefixes`` or
    matches ``regex``. Options: ``prefixes`` ("/.git,/wp-admin"), ``regex``, ``status``
    (403), ``score`` (0: deny; > 0: add this many points instead), ``name``."""

    needs_body = False  # judged on the head: before SecLang phase 1 with order "before"

    def __init__(self, options):
        _options(options, ("prefixes", "regex", "status", "score", "name"))
        self.name = options.get("name", "deny_paths")
        self.prefixes = _strings(options, "prefixes") if "prefixes" in options else ()
        pattern = options.get("regex")
        try:
            self.regex = re.compile(pattern) if pattern is not None else None
        except (re.error, TypeError) as e:
            raise ValueError("regex: %s" % e) from None
        if not self.prefixes and self.regex is None:
            raise ValueError("give prefixes = \"/a,/b\" or regex = \"...\"")
        self.status = _status(options)
        self.points = _points(options)

    def evaluate(self, request):
        path = request.path
        hit = path.startswith(self.prefixes) if self.prefixes else False
        if not hit and self.regex is not None:
            hit = self.regex.search(path) is not None
        if not hit:
            return ALLOW
        reason = "path %s denied" % path[:100]
        return score(self.points, reason) if self.points else deny(self.status, reason)


@implementer(IFirewallRule)
class DenyHeader:
    """Deny (or score) requests carrying header ``header`` (any value), or with a value
    containing one of ``values`` (case-insensitive). Options: ``header``, ``values``
    ("sqlmap,nikto"), ``status``, ``score``, ``name``."""

    needs_body = False  # judged on the head: before SecLang phase 1 with order "before"

    def __init__(self, options):
        _options(options, ("header", "values", "status", "score", "name"))
        header = options.get("header")
        if not isinstance(header, str) or not header.strip():
            raise ValueError("header: expected a header name")
        self.header = header.strip().lower()
        self.name = options.get("name", "deny_header")
        self.values = tuple(v.lower() for v in _strings(options, "values")) \
            if "values" in options else ()
        self.status = _status(options)
        self.points = _points(options)

    def evaluate(self, request):
        for key, value in request.headers:
            if key != self.header:
                continue
            lowered = value.lower()
            if not self.values or any(v in lowered for v in self.values):
                reason = "header %s: %s" % (self.header, value[:100])
                return score(self.points, reason) if self.points else deny(self.status, reason)
        return ALLOW

"""Which certificate group serves a TLS server name: exact name, then wildcard, then default.

A pure lookup table. A wildcard ``*.example.com`` covers exactly one label
(``a.example.com``, not ``example.com`` nor ``a.b.example.com``), as RFC 6125 says clients
check it. Names compare case-insensitively, a trailing dot ignored.
"""

from __future__ import annotations


class SNIMap:
    """``name -> value`` with wildcards and a default. ``add(names, value)`` keeps the first
    value given for a name (the order of the config decides between two certificates claiming
    the same name with the same key type)."""

    def __init__(self, default=None):
        self.default = default
        self._exact = {}
        self._wildcard = {}  # "example.com" for "*.example.com"

    def add(self, name: str, value) -> None:
        name = name.lower().rstrip(".")
        if name.startswith("*."):
            self._wildcard.setdefault(name[2:], value)
        else:
            self._exact.setdefault(name, value)

    def lookup(self, server_name):
        """The value for ``server_name`` (str, or None when the client sent no SNI)."""
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        found = self._exact.get(name)
        if found is not None:
            return found
        _, dot, parent = name.partition(".")
        if dot:
            found = self._wildcard.get(parent)
            if found is not None:
                return found
        return self.default

    def names(self):
        """Every name served (wildcards as ``*.parent``)."""
        return sorted(self._exact) + sorted("*." + p for p in self._wildcard)

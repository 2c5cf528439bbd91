"""Header rewriting of a route: ``set`` / ``add`` / ``remove`` with template values (pure).

Applied in this order to a header list (lower-case byte names, repeated names kept):
``remove`` drops every line of each named field; ``set`` replaces every line of a field with
one (added when absent); ``add`` appends a line, keeping those already there. A template that
fails to render (it cannot: values come from a strictly parsed head, but the check exists)
drops that one field instead of writing a broken head.

``SECURITY_HEADERS`` is the preset ``security_headers = true`` turns on: each field added only
when the response has none (the backend's own choice wins); HSTS only on https listeners.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from twisted.logger import Logger

from revproxy.routing.templates import Template, TemplateValues

log = Logger(namespace="revproxy.routing")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")

Headers = List[Tuple[bytes, bytes]]


class HeaderOps:
    """One ``request_headers`` / ``response_headers`` table, compiled."""

    __slots__ = ("set", "add", "remove", "_dropped")

    def __init__(self, set_fields: Sequence[Tuple[str, Template]] = (),
                 add_fields: Sequence[Tuple[str, Template]] = (),
                 remove: Sequence[str] = ()) -> None:
        self.set = tuple((name.lower().encode("ascii"), value) for name, value in set_fields)
        self.add = tuple((name.lower().encode("ascii"), value) for name, value in add_fields)
        self.remove = frozenset(name.lower().encode("ascii") for name in remove)
        self._dropped = self.remove | frozenset(name for name, _ in self.set)

    def apply(self, headers: Headers, values: TemplateValues) -> Headers:
        """A new list: ``headers`` with the operations applied."""
        dropped = self._dropped
        out = [field for field in headers if field[0] not in dropped] if dropped else headers
        for name, template in self.set + self.add:
            try:
                out.append((name, template.render(values)))
            except ValueError as exc:
                log.warn("header {name} not set: {why}", name=name, why=exc)
        return out


def add_security_headers(headers: Headers, https: bool) -> None:
    """The preset, in place: each field appended only when ``headers`` has none."""
    present = {name for name, _ in headers}
    for field in SECURITY_HEADERS:
        if field[0] not in present:
            headers.append(field)
    if https and HSTS[0] not in present:
        headers.append(HSTS)

"""The "consistent-hash" policy: a weighted hash ring, so a key keeps its member."""

from __future__ import annotations

from bisect import bisect_left
from hashlib import blake2b

from zope.interface import implementer

from revproxy.balancing.options import check_options, positive_int
from revproxy.interfaces import IBalancer

_MAX_VNODES = 10000


def stable_hash(data: bytes) -> int:
    """A 64-bit hash of ``data``, the same in every process and on every machine
    (unlike ``hash()``, which is salted per process)."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def parse_key(policy, spec):
    """The key option as ``(kind, name)``: ("client-ip", None), ("path", None),
    ("header", b"lower-case-name") or ("cookie", b"name"); ValueError otherwise."""
    if spec in ("client-ip", "path"):
        return spec, None
    if isinstance(spec, str):
        kind, _, name = spec.partition(":")
        if kind in ("header", "cookie") and name.strip():
            name = name.strip().encode("latin-1")
            return kind, name.lower() if kind == "header" else name
    raise ValueError(
        "balance %r: option 'key' must be \"client-ip\", \"path\", \"header:NAME\" or "
        "\"cookie:NAME\", not %r" % (policy, spec)
    )


@implementer(IBalancer)
class ConsistentHashBalancer:
    """Maps the request's key onto a ring of ``vnodes`` points per unit of weight per
    member (weight rounded, at least 1) and picks the first member clockwise that is a
    candidate. Adding or removing one of N members moves about 1/N of the keys, and only
    keys of that member; a member that is not a candidate hands its keys to the next ones
    on the ring and gets them back when it returns.

    The ring uses the weights as they are when ``set_members`` is called.
    """

    name = "consistent-hash"

    def __init__(self, options=None, random=None):
        options = check_options(self.name, options, ("key", "vnodes"))
        self.vnodes = positive_int(self.name, "vnodes", options.get("vnodes", 160), _MAX_VNODES)
        self.key_kind, self.key_name = parse_key(self.name, options.get("key", "client-ip"))
        self._members = []
        self._points = []  # sorted ring positions
        self._owners = []  # index in _members of the owner of each position

    def set_members(self, members):
        self._members = list(members)
        ring = []
        for index, member in enumerate(self._members):
            copies = self.vnodes * max(1, int(member.weight + 0.5))
            prefix = member.name.encode("utf-8") + b"#"
            ring.extend((stable_hash(prefix + b"%d" % i), index) for i in range(copies))
        # Ties between points (vanishingly rare with 64 bits) order by member position,
        # which is the config order: the same on every machine.
        ring.sort()
        self._points = [point for point, _ in ring]
        self._owners = [owner for _, owner in ring]

    def key_of(self, request) -> bytes:
        """The bytes hashed for ``request``; a missing header or cookie falls back to the
        client's address."""
        kind = self.key_kind
        value = None
        if kind == "path":
            value = request.path.encode("utf-8", "surrogateescape")
        elif kind == "header":
            value = request.header(self.key_name)
        elif kind == "cookie":
            value = request.cookie(self.key_name)
        if value is None:
            value = request.client_ip.encode("ascii", "replace")
        return value

    def pick(self, candidates, request):
        point = stable_hash(self.key_of(request))
        points = self._points
        if not points:
            return candidates[point % len(candidates)]
        start = bisect_left(points, point)
        members = self._members
        owners = self._owners
        size = len(owners)
        if len(candidates) == len(members):
            chosen = members[owners[start % size]]
        else:
            chosen = self._first_candidate(candidates, start)
        request.note("%s hash %016x -> %s", self.key_kind, point, chosen.name)
        return chosen

    def _first_candidate(self, candidates, start):
        # Walk clockwise past the members that are not candidates.
        wanted = {c.name: c for c in candidates}
        members = self._members
        owners = self._owners
        size = len(owners)
        for step in range(size):
            member = wanted.get(members[owners[(start + step) % size]].name)
            if member is not None:
                return member
        # Candidates unknown to the ring (the contract rules it out): stay usable.
        return candidates[start % len(candidates)]

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass

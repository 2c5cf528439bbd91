"""IP addresses and CIDR blocks as integer ranges, and a matcher over many of them (pure).

An entry (``192.0.2.0/24``, ``2001:db8::/32``, or a bare address) is a closed range of
integers in one family, IPv4 or IPv6. IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is IPv4 here,
for entries and for peers alike: a dual-stack socket reports an IPv4 client as
``::ffff:a.b.c.d``, and an entry ``::ffff:192.0.2.0/120`` means ``192.0.2.0/24``. Any other
IPv6 entry (``::/0`` included) only ever matches IPv6 peers.

``RangeSet`` keeps sorted, merged ranges and answers membership with one bisection:
O(log n) per lookup, O(n log n) to build.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from typing import Iterable, Optional, Tuple

IPV4, IPV6 = 4, 6
_MAPPED_FIRST = 0xFFFF << 32  # ::ffff:0.0.0.0
_MAPPED_LAST = _MAPPED_FIRST | 0xFFFFFFFF
_MAPPED_PREFIX = 96

EXPECTED = ("expected an IPv4 or IPv6 address or CIDR block "
            "(e.g. 192.0.2.7, 192.0.2.0/24, 2001:db8::/32)")

Range = Tuple[int, int, int]  # (family, first, last), last included


def parse_entry(text: str) -> Range:
    """``text`` (an address or a CIDR block) as ``(family, first, last)``.

    Raises ``ValueError`` saying what was expected: a block with host bits set
    (``10.0.0.1/8``) is refused with the block it probably meant, since a typo there would
    widen or narrow a list silently; a zone index (``fe80::1%eth0``) has no meaning in a list.
    """
    if "%" in text:
        raise ValueError("a zone index (%...) has no meaning in an IP list; " + EXPECTED)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(EXPECTED) from None
        raise ValueError("host bits set: did you mean %s?" % loose) from None
    first = int(network.network_address)
    last = int(network.broadcast_address)
    if network.version == 4:
        return IPV4, first, last
    if _MAPPED_FIRST <= first and last <= _MAPPED_LAST:
        return IPV4, first - _MAPPED_FIRST, last - _MAPPED_FIRST
    return IPV6, first, last


def peer_key(host: str) -> Optional[Tuple[int, int]]:
    """A peer address as reported by a transport (``"192.0.2.7"``, ``"2001:db8::1"``,
    ``"::ffff:192.0.2.7"``, a zone index allowed) as ``(family, integer)``; None when it is
    not an IP address (a unix socket's peer)."""
    try:
        if ":" in host:
            zone = host.find("%")
            if zone >= 0:
                host = host[:zone]
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
            if _MAPPED_FIRST <= value <= _MAPPED_LAST:
                return IPV4, value - _MAPPED_FIRST
            return IPV6, value
        return IPV4, int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
    except (OSError, ValueError, TypeError):
        return None


class RangeSet:
    """Integer ranges, sorted and merged (overlapping or adjacent ranges become one)."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self, ranges: Iterable[Tuple[int, int]] = ()):
        firsts, lasts = [], []
        for first, last in sorted(ranges):
            if lasts and first <= lasts[-1] + 1:
                if last > lasts[-1]:
                    lasts[-1] = last
            else:
                firsts.append(first)
                lasts.append(last)
        self._firsts = firsts
        self._lasts = lasts

    def __contains__(self, value: int) -> bool:
        index = bisect_right(self._firsts, value) - 1
        return index >= 0 and value <= self._lasts[index]

    def __len__(self) -> int:
        """The number of merged ranges."""
        return len(self._firsts)

    def ranges(self):
        """The merged ranges, in order, as (first, last) pairs."""
        return zip(self._firsts, self._lasts)


class AddressMatcher:
    """A set of entries of both families: ``key in matcher`` for a ``peer_key`` result,
    ``matcher.matches(host)`` for a peer address string (False when it is no IP address)."""

    __slots__ = ("v4", "v6", "entries")

    def __init__(self, ranges: Iterable[Range] = ()):
        v4, v6 = [], []
        count = 0
        for family, first, last in ranges:
            (v4 if family == IPV4 else v6).append((first, last))
            count += 1
        self.v4 = RangeSet(v4)
        self.v6 = RangeSet(v6)
        self.entries = count  # as given, before merging (for logs)

    @classmethod
    def union(cls, matchers: Iterable["AddressMatcher"]) -> "AddressMatcher":
        """One matcher for every address any of ``matchers`` holds."""
        ranges = []
        count = 0
        for matcher in matchers:
            ranges.extend((IPV4, first, last) for first, last in matcher.v4.ranges())
            ranges.extend((IPV6, first, last) for first, last in matcher.v6.ranges())
            count += matcher.entries
        merged = cls(ranges)
        merged.entries = count
        return merged

    def __contains__(self, key) -> bool:
        if key is None:
            return False
        family, value = key
        return value in (self.v4 if family == IPV4 else self.v6)

    def matches(self, host: str) -> bool:
        return peer_key(host) in self

    def __len__(self) -> int:
        """The number of merged ranges of both families."""
        return len(self.v4) + len(self.v6)

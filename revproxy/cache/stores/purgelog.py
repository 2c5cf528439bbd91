"""The disk store's soft-purge journal: a soft purge costs one appended line, not a rewrite
of every file it matches.

The index holds the stale flag while the process runs. So that a restart still knows, each
soft purge appends ``<time> <prefix hex or -> <tag hex or ->`` to ``<root>/soft-purges``;
at start-up a record file whose modification time is not after a matching purge's time is
indexed stale (it was written before the purge). Both times are stamped by the store
(``Stamps``), never left to the kernel: a file system's own timestamps come from a coarse
clock that may lag the wall clock by a tick, so a file written just after a purge could look
older than it. The journal's times are decimal seconds with nanoseconds, read back exactly. A line that does not parse (a torn last line after a crash) is
skipped: the purge it held is lost, the safe failure is to serve until the entry expires,
which is what the origin's headers allowed anyway. The journal is compacted at start-up:
purges older than every record file can no longer match anything.
"""

from __future__ import annotations

import binascii
import os
import time
from typing import List, NamedTuple, Optional

JOURNAL_NAME = "soft-purges"


class SoftPurge(NamedTuple):
    """One soft purge: at wall time ``at_ns`` (nanoseconds), keys starting with ``prefix``
    (None: any) and tagged ``tag`` (None: any)."""

    at_ns: int
    prefix: Optional[bytes]
    tag: Optional[bytes]

    def matches(self, key: bytes, tags, written_ns: int) -> bool:
        """Whether a record of ``key`` with ``tags``, stamped ``written_ns``, was purged."""
        return (written_ns <= self.at_ns and (not self.prefix or key.startswith(self.prefix))
                and (self.tag is None or self.tag in tags))


class Stamps:
    """The times a store gives its record files and its soft purges, in nanoseconds of
    ``wall_ns`` (default ``time.time_ns``), ordered as the calls are: a record stamped after
    a purge is later than it, a purge is not earlier than any record stamped before it,
    even when the wall clock stands still or steps back. ``last_write`` and ``last_purge``
    start from what the directory already holds."""

    def __init__(self, wall_ns=time.time_ns, last_write: int = 0, last_purge: int = 0):
        self._wall_ns = wall_ns
        self.last_write = last_write
        self.last_purge = last_purge

    def write(self) -> int:
        """The time to give a record file written now."""
        stamp = max(self._wall_ns(), self.last_purge + 1)
        self.last_write = max(self.last_write, stamp)
        return stamp

    def purge(self) -> int:
        """The time of a soft purge made now."""
        stamp = max(self._wall_ns(), self.last_write, self.last_purge)
        self.last_purge = stamp
        return stamp


def _hex(value: Optional[bytes]) -> str:
    return "-" if value is None else (binascii.hexlify(value).decode("ascii") or "-")


def _unhex(text: str) -> Optional[bytes]:
    return None if text == "-" else binascii.unhexlify(text)


def encode(purge: SoftPurge) -> bytes:
    """The journal line of ``purge``."""
    seconds, nanos = divmod(purge.at_ns, 1000000000)
    return ("%d.%09d %s %s\n" % (seconds, nanos, _hex(purge.prefix), _hex(purge.tag))
            ).encode("ascii")


def parse_time(text: str) -> int:
    """Nanoseconds of a journal time: decimal seconds, exactly (a journal written before
    the times had nanoseconds holds ``repr`` of a float, which reads the same way).
    ValueError if it is not a plain decimal number."""
    seconds, dot, fraction = text.partition(".")
    if not seconds.isdigit() or (dot and not fraction.isdigit()):
        raise ValueError(text)
    return int(seconds) * 1000000000 + int((fraction + "000000000")[:9])


def read(root: str) -> List[SoftPurge]:
    """The purges in ``root``'s journal (none if it is missing); bad lines are skipped."""
    try:
        with open(os.path.join(root, JOURNAL_NAME), "rb") as f:
            data = f.read()
    except OSError:
        return []
    purges = []
    for line in data.split(b"\n"):
        try:
            at, prefix, tag = line.decode("ascii").split(" ")
            purges.append(SoftPurge(parse_time(at), _unhex(prefix), _unhex(tag)))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            continue
    return purges


def append(root: str, purge: SoftPurge) -> None:
    """Append ``purge`` to ``root``'s journal (one write). Raises OSError."""
    fd = os.open(os.path.join(root, JOURNAL_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                 0o600)
    try:
        os.write(fd, encode(purge))
    finally:
        os.close(fd)


def rewrite(root: str, purges: List[SoftPurge]) -> None:
    """Replace ``root``'s journal by ``purges`` (removed when empty). Raises OSError."""
    from revproxy.cache.stores.diskfiles import write_atomically

    path = os.path.join(root, JOURNAL_NAME)
    if not purges:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    write_atomically(path, b"".join(encode(p) for p in purges), False)

"""The disk store's soft-purge journal: a soft purge costs one appended line, not a rewrite
of every file it matches.

The index holds the stale flag while the process runs. So that a restart still knows, each
soft purge appends ``<time> <prefix hex or -> <tag hex or ->`` to ``<root>/soft-purges``;
at start-up a record file whose modification time is not after a matching purge's time is
indexed stale (it was written before the purge). The file's time and the purge's are both
the system's wall clock. A line that does not parse (a torn last line after a crash) is
skipped: the purge it held is lost, the safe failure is to serve until the entry expires,
which is what the origin's headers allowed anyway. The journal is compacted at start-up:
purges older than every record file can no longer match anything.
"""

from __future__ import annotations

import binascii
import os
from typing import List, NamedTuple, Optional

JOURNAL_NAME = "soft-purges"


class SoftPurge(NamedTuple):
    """One soft purge: at wall time ``at``, keys starting with ``prefix`` (None: any) and
    tagged ``tag`` (None: any)."""

    at: float
    prefix: Optional[bytes]
    tag: Optional[bytes]

    def matches(self, key: bytes, tags, written_at: float) -> bool:
        """Whether a record of ``key`` with ``tags``, written at ``written_at``, was purged."""
        return (written_at <= self.at and (not self.prefix or key.startswith(self.prefix))
                and (self.tag is None or self.tag in tags))


def _hex(value: Optional[bytes]) -> str:
    return "-" if value is None else (binascii.hexlify(value).decode("ascii") or "-")


def _unhex(text: str) -> Optional[bytes]:
    return None if text == "-" else binascii.unhexlify(text)


def encode(purge: SoftPurge) -> bytes:
    """The journal line of ``purge``."""
    return ("%r %s %s\n" % (purge.at, _hex(purge.prefix), _hex(purge.tag))).encode("ascii")


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
            purges.append(SoftPurge(float(at), _unhex(prefix), _unhex(tag)))
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

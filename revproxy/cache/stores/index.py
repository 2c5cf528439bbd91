"""The bookkeeping both built-in stores share: keys in least-recently-used order, bounded in
bytes, with their expiry times and purge tags.

The index holds no I/O: the memory store keeps the values themselves in the slots, the disk
store keeps file names there and deletes the files of the slots the index gives back.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Set, Tuple


class Slot:
    """What the index knows of one key: the held thing (``value``: a value or a file name),
    its accounted ``size``, when it expires (``expires_at``, seconds), its ``tags``, and
    whether it was soft-purged (``stale``)."""

    __slots__ = ("value", "size", "expires_at", "tags", "stale")

    def __init__(self, value, size: int, expires_at: float, tags: Iterable[bytes] = (),
                 stale: bool = False) -> None:
        self.value = value
        self.size = size
        self.expires_at = expires_at
        self.tags = tuple(tags)
        self.stale = stale


class LruIndex:
    """Slots by key, oldest-used first; ``add`` evicts from the old end past ``max_bytes``.

    ``slots`` is public for the stores' hot paths (a lookup is one dict access); they call
    ``touch`` on a hit and go through ``add``/``remove`` for every change, so that
    ``bytes`` and the tag map stay right.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.slots: "OrderedDict[bytes, Slot]" = OrderedDict()
        self.bytes = 0
        self._tag_keys: Dict[bytes, Set[bytes]] = {}

    def __len__(self) -> int:
        return len(self.slots)

    def touch(self, key: bytes) -> None:
        """``key`` (present) becomes the most recently used."""
        self.slots.move_to_end(key)

    def add(self, key: bytes, slot: Slot) -> Tuple[Optional[Slot], List[Tuple[bytes, Slot]]]:
        """Put ``slot`` under ``key`` as the most recently used. Returns the slot it replaced
        (or None) and the ``(key, slot)`` pairs evicted, oldest first, to get back under
        ``max_bytes``; the new slot itself is never evicted."""
        old = self.remove(key)
        self.slots[key] = slot
        self.bytes += slot.size
        for tag in slot.tags:
            self._tag_keys.setdefault(tag, set()).add(key)
        evicted = []
        while self.bytes > self.max_bytes and len(self.slots) > 1:
            oldest = next(iter(self.slots))
            evicted.append((oldest, self.remove(oldest)))
        return old, evicted

    def remove(self, key: bytes) -> Optional[Slot]:
        """Take ``key`` out; its slot, or None if absent."""
        slot = self.slots.pop(key, None)
        if slot is None:
            return None
        self.bytes -= slot.size
        for tag in slot.tags:
            keys = self._tag_keys.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tag_keys[tag]
        return slot

    def matching(self, prefix: Optional[bytes], tag: Optional[bytes]) -> List[bytes]:
        """The keys starting with ``prefix`` and tagged ``tag`` (None: no condition)."""
        if tag is not None:
            keys: Iterable[bytes] = list(self._tag_keys.get(tag, ()))
        else:
            keys = list(self.slots)
        if prefix:
            keys = [k for k in keys if k.startswith(prefix)]
        return list(keys)

    def expired(self, now: float) -> List[bytes]:
        """The keys whose slot has expired at ``now``."""
        return [k for k, slot in self.slots.items() if slot.expires_at <= now]

    def clear(self) -> None:
        """Forget every slot."""
        self.slots.clear()
        self._tag_keys.clear()
        self.bytes = 0

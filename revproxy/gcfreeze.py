"""Keep the start-up heap out of the garbage collector's full collections.

CPython's full (generation 2) collection walks every tracked object; right after start-up
that is the whole of Twisted, the proxy, the parsed configuration and a disk store's loaded
index: tens of thousands of objects, a 10-20 ms pause of the reactor thread each time one
runs (``bench/reactor_lateness.py``). These objects live as long as the process, so after
start-up they are moved to the permanent generation (``gc.freeze``, Python 3.7+), which
full collections skip. Objects created later (requests, new cache entries, the runtimes of
later reloads) are collected as usual; only cycles among the frozen start-up objects would
never be freed, and those live for the whole process anyway.

PyPy's collector is incremental and has no ``gc.freeze``: there this does nothing.
"""

from __future__ import annotations

import gc as _gc


def freeze_startup_heap(gc=_gc) -> int:
    """Collect once, then freeze what survives; returns the number of objects frozen (0
    where the collector has no ``freeze``)."""
    freeze = getattr(gc, "freeze", None)
    if freeze is None:
        return 0
    gc.collect()
    freeze()
    return gc.get_freeze_count()

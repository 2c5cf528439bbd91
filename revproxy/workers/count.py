"""The worker count of ``--workers`` and ``[server] workers`` (pure)."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

MAX_WORKERS = 1024  # a typo guard, not a tuning limit


def parse_workers(value: Any, cpu_count: Optional[Callable[[], Optional[int]]] = None) -> int:
    """``value`` as a worker count: a positive integer (or its decimal text), or ``"auto"``
    (one per core: ``cpu_count()``, 1 when unknown). Raises ValueError saying what is
    expected."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            cores = (cpu_count or os.cpu_count)()
            return max(1, int(cores or 1))
        if not text.isdigit():
            raise ValueError('expected a number of worker processes (1-%d) or "auto"'
                             % MAX_WORKERS)
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ValueError('expected a number of worker processes (1-%d) or "auto"' % MAX_WORKERS)
    return value

"""Cost of the admin metrics recorder per proxied request (revproxy.admin.recorder).

``RequestRecorder.record`` runs once per request in ``ProxyRequest.response_done``; this
times it alone (a route, a member, an upstream time: the common proxied case) and prints
nanoseconds per call. Run: .venv/bin/python bench/admin_recorder.py (and .venv-pypy).
"""

from __future__ import annotations

import sys
import time

from revproxy.admin.recorder import RequestRecorder


class _Named:
    def __init__(self, name):
        self.name = name


class _Ctx:
    def __init__(self):
        self.route = _Named("default")
        self.started_at = 1000.0
        self.member = "127.0.0.1:8001"


class _Exchange:
    def __init__(self):
        self.pool = _Named("main")
        self.upstream_time = 0.0004
        self.attempts = 1


def main(n=1_000_000):
    recorder = RequestRecorder()
    ctx, exchange = _Ctx(), _Exchange()
    now = 1000.0
    for _ in range(3):  # warm up (PyPy's JIT)
        for i in range(n // 10):
            recorder.record(ctx, 200, exchange, now + i * 1e-5)
    best = None
    for _ in range(5):
        start = time.perf_counter()
        for i in range(n):
            recorder.record(ctx, 200, exchange, now + i * 1e-5)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    print("%s: RequestRecorder.record %.0f ns per request (best of 5 x %d)"
          % (sys.implementation.name, best / n * 1e9, n))


if __name__ == "__main__":
    main()

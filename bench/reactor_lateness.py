"""Does the disk store stall the reactor? Measured from inside the reactor.

Run with the venv's python from the repo root:

    .venv/bin/python bench/reactor_lateness.py [--duration 8] [--threads 4,0]

`bench/disk_stall.py` measures stalls from outside, through a proxied request, so its figures
include queueing behind the load requests. This script measures the reactor itself: the real
reactor runs the real ``DiskStore`` with ``fsync = true`` under a continuous store load
(``IN_FLIGHT`` puts of 16 KiB entries kept in flight, each a write, fsync, rename and
directory fsync), while a ``LoopingCall`` due every millisecond records how late it runs.
A stall of the reactor thread shows as lateness; I/O in the pool threads does not. Each
``--threads`` value is one run (0: the I/O in the reactor thread, as before issue 12).
Everything happens in a temporary directory, removed at the end.

Like the proxy, the child freezes its start-up heap (``revproxy.gcfreeze``) before the load
starts; ``REVPROXY_NO_FREEZE=1`` leaves it out (then the worst tick is a full collection).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IN_FLIGHT = 8
TICK = 0.001
WARM_UP = 2.0
BODY = os.urandom(16 * 1024)


def measure(threads: int, duration: float) -> dict:
    """Run one load in a child process (a reactor runs once per process)."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(threads),
                          "--duration", str(duration)], stdout=subprocess.PIPE, check=True,
                         timeout=duration + 120)
    return json.loads(out.stdout.decode("ascii").strip().splitlines()[-1])


def child(threads: int, duration: float) -> None:
    import json

    interval = os.environ.get("REVPROXY_SWITCH_INTERVAL")
    if interval:  # an experiment: how much of the worst tick is GIL hand-off?
        sys.setswitchinterval(float(interval))
    if os.environ.get("REVPROXY_NO_GC"):  # an experiment: is the worst tick a GC pause?
        import gc

        gc.disable()

    from twisted.internet import reactor, task

    from revproxy.cache.stores.disk import DiskStore
    from revproxy.testing.stores import sample_entry

    work = tempfile.mkdtemp(prefix="revproxy-lateness-")
    store = DiskStore.from_options({"path": work, "fsync": True, "threads": threads,
                                    "memory_bytes": 0}, reactor)
    lateness = []
    warm = []  # lateness after the first WARM_UP seconds (PyPy's JIT compiles early on)
    started = [time.monotonic()]
    stored = [0]
    state = {"next": None, "counter": 0, "stop": False}

    def tick():
        now = time.monotonic()
        if state["next"] is not None:
            lateness.append(max(0.0, now - state["next"]))
            if now - started[0] > WARM_UP:
                warm.append(lateness[-1])
        state["next"] = now + TICK

    def one_put(_=None):
        if state["stop"]:
            return None
        state["counter"] += 1
        key = b"GET bench.test/%d" % state["counter"]
        d = store.put(key, sample_entry(key=key, body=BODY), 3600)
        d.addCallback(lambda ok: stored.__setitem__(0, stored[0] + 1))
        d.addBoth(lambda _: reactor.callLater(0, one_put))  # never recursive when synchronous
        return None

    def stop():
        state["stop"] = True
        loop.stop()
        reactor.callLater(0.5, reactor.stop)

    if not os.environ.get("REVPROXY_NO_FREEZE"):  # as twistd revproxy does once running
        from revproxy.gcfreeze import freeze_startup_heap

        freeze_startup_heap()
    loop = task.LoopingCall(tick)
    reactor.callWhenRunning(lambda: started.__setitem__(0, time.monotonic()))
    loop.start(TICK)
    for _ in range(IN_FLIGHT):
        reactor.callWhenRunning(one_put)
    reactor.callLater(duration, stop)
    reactor.run()
    shutil.rmtree(work, ignore_errors=True)
    lateness.sort()
    p99 = lateness[int(len(lateness) * 0.99)] if lateness else 0.0
    print(json.dumps({"threads": threads, "stores_per_s": stored[0] / duration,
                      "ticks": len(lateness), "p99_ms": p99 * 1000,
                      "max_ms": (lateness[-1] if lateness else 0.0) * 1000,
                      "warm_max_ms": max(warm, default=0.0) * 1000}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--threads", default="4,0", help="comma-separated I/O thread counts")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.duration)
        return 0
    print("%8s %12s %8s %10s %10s %14s" % ("threads", "stores/s", "ticks", "p99 ms", "max ms",
                                          "max after %gs" % WARM_UP))
    for threads in [int(t) for t in args.threads.split(",") if t]:
        row = measure(threads, args.duration)
        print("%8d %12.0f %8d %10.2f %10.2f %14.2f" % (
            row["threads"], row["stores_per_s"], row["ticks"], row["p99_ms"], row["max_ms"],
            row["warm_max_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

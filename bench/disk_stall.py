"""Does a busy disk store stall the reactor? revproxy with the disk store and fsync = true
under a continuous store load, and the latency of a tiny proxied request meanwhile.

Run with the venv's python from the repo root (see bench/README.md, "Disk store stalls"):

    .venv/bin/python bench/disk_stall.py [--duration 8] [--json out.json]

Load: ``LOAD_CLIENTS`` keep-alive clients GET unique cacheable URLs in a closed loop (each a
miss, so each response is stored: write, fsync, rename, fsync of the directory). Probe: one
keep-alive client GETs a 1 KiB URL with ``Cache-Control: no-store`` (never a hit: proxied)
every ``PROBE_EVERY`` seconds; its max and p99 latency are the reactor's stalls plus one
proxied exchange. Run twice: ``threads = 4`` (the default) and ``threads = 0`` (I/O in the
reactor thread, as before issue 12). The backend is bench/cache.py's nginx.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache  # noqa: E402  (bench/ is not a package)
import proxies  # noqa: E402
import run  # noqa: E402

LOAD_CLIENTS = 4
PROBE_EVERY = 0.005
CONF = """[server]
listen = ["tcp:{port}:interface=127.0.0.1"]

[logging]
access_log = ""

[cache]
store = "disk"
store_options = {{ path = "{path}", fsync = true, threads = {threads} }}

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
"""


def load(port: int, stop: threading.Event, counts: List[int], index: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while not stop.is_set():
        conn.request("GET", "/1k.bin?load=%d-%d" % (index, n))
        conn.getresponse().read()
        n += 1
    counts[index] = n
    conn.close()


def probe(port: int, seconds: float) -> List[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        conn.request("GET", "/1k.bin?probe", headers={"Cache-Control": "no-store"})
        conn.getresponse().read()
        latencies.append(time.monotonic() - started)
        time.sleep(PROBE_EVERY)
    conn.close()
    return latencies


def one_run(procs: run.Processes, upstream: int, threads: int, duration: int) -> dict:
    port = run.free_port()
    label = "revproxy-disk-threads-%d" % threads
    conf = os.path.join(procs.work, label + ".toml")
    with open(conf, "w") as f:
        f.write(CONF.format(port=port, upstream=upstream, threads=threads,
                            path=os.path.join(procs.work, label + "-store")))
    twistd = proxies.venv_bin(".venv", "twistd")
    proc = procs.start(label, [twistd, "-n", "--pidfile=", "revproxy", "--config", conf],
                       cpu=1, env=proxies.revproxy_env())
    try:
        problem = run.wait_ready(proc, port)
        if problem:
            raise RuntimeError("%s did not start: %s\n%s" % (label, problem,
                                                             procs.log_tail(label)))
        probe(port, 1.0)  # warm the connection and the code paths
        stop, counts = threading.Event(), [0] * LOAD_CLIENTS
        loaders = [threading.Thread(target=load, args=(port, stop, counts, i))
                   for i in range(LOAD_CLIENTS)]
        for t in loaders:
            t.start()
        try:
            latencies = sorted(probe(port, duration))
        finally:
            stop.set()
            for t in loaders:
                t.join()
        row = {"threads": threads, "stores_per_s": sum(counts) / duration,
               "probes": len(latencies),
               "probe_p50_ms": 1000 * latencies[len(latencies) // 2],
               "probe_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
               "probe_max_ms": 1000 * latencies[-1]}
        print("  threads=%d: %.0f stores/s; probe p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (threads, row["stores_per_s"], row["probe_p50_ms"], row["probe_p99_ms"],
                 row["probe_max_ms"]))
        return row
    finally:
        procs.stop(proc)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per run (8)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    report = {"duration": args.duration, "results": []}

    def body(procs):
        upstream = cache.start_backend(procs)
        for threads in (4, 0):
            report["results"].append(one_run(procs, upstream, threads, args.duration))

    status = run.guarded("revproxy-bench-disk-stall-", body)
    run.write_json(report, args.json)
    return status


if __name__ == "__main__":
    sys.exit(main())

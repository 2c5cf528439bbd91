"""Benchmark revproxy with 1 worker against 2 workers (a supervisor and two processes sharing
the listening socket) on the proxied 1 KiB path and on 1 KiB cache hits, with wrk.

Run with the python whose revproxy you measure, from the repo root (see bench/README.md,
"Several workers"):

    /path/to/.venv/bin/python bench/workers.py [--duration 10] [--json out.json]
    /path/to/.venv-pypy/bin/python bench/workers.py --label pypy

Nothing is pinned: the workers must be free to use both cores, so wrk, the nginx backend and
the proxy's processes all compete for the same cores, as they would on a small real machine.
The load average before each run is printed and recorded: other work on the machine moves
these figures. Every process started is killed at the end, even on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache  # noqa: E402  (bench/ is not a package: the cacheable nginx backend, hit checks)
import proxies  # noqa: E402
import run  # noqa: E402  (ports, processes, wrk, CPU accounting, signals)

TWISTD = "from twisted.scripts.twistd import run; run()"
CONNECTIONS = 50
# (scenario, cache store, workers)
RUNS = (("proxied-1k", "", 1), ("proxied-1k", "", 2), ("hit-1k", "memory", 1),
        ("hit-1k", "memory", 2))
CONF = """[server]
listen = ["tcp:{port}:interface=127.0.0.1"]
workers = {workers}

[logging]
access_log = ""

[cache]
store = "{store}"

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
"""


def start_proxy(procs, label, workers, store, upstream):
    port = run.free_port()
    conf = os.path.join(procs.work, label + ".toml")
    with open(conf, "w") as f:
        f.write(CONF.format(port=port, workers=workers, store=store, upstream=upstream))
    argv = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "revproxy", "--config", conf]
    proc = procs.start(label, argv, cpu=1, env=proxies.revproxy_env())
    problem = run.wait_ready(proc, port)
    if problem:
        raise RuntimeError("%s did not start: %s\n%s" % (label, problem, procs.log_tail(label)))
    return proc, port


def worker_cpu(leader: int) -> List[float]:
    """CPU seconds of each process in the session, largest first (supervisor included)."""
    ticks = float(os.sysconf("SC_CLK_TCK"))
    return sorted(((int(f[11]) + int(f[12])) / ticks for _, f in run.session_processes(leader)),
                  reverse=True)


def bench_one(procs, args, upstream, scenario, store, workers) -> dict:
    label = "%s-w%d" % (scenario, workers)
    proc, port = start_proxy(procs, label, workers, store, upstream)
    try:
        if store:
            for _ in range(3):
                run.fetch(port, "/1k.bin")
            status, length, headers = cache.fetch_headers(port, "/1k.bin")
            if not cache._revproxy_hit(headers):
                raise RuntimeError("%s: /1k.bin is not a cache hit: %s" % (label, headers))
        run.run_wrk(port, "/1k.bin", CONNECTIONS, run.WARMUP_SECONDS)  # PyPy's JIT, pools
        load = os.getloadavg()[0]
        before = worker_cpu(proc.pid)
        row = run.measure(port, "/1k.bin", CONNECTIONS, args.duration, upstream, proc.pid)
        after = worker_cpu(proc.pid)
        row.update(scenario=scenario, workers=workers, label=args.label, loadavg_before=load,
                   process_cpu_s=[round(b - a, 2) for a, b in zip(before, after)])
        print("  %-11s workers=%d  %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  "
              "CPU busy %.2f cores  load avg %.2f" % (
                  scenario, workers, row["rps"], row["p50_ms"], row["p99_ms"], row["errors"],
                  row["cpu_busy"], load))
        return row
    finally:
        procs.stop(proc)


def run_all(args, procs, report):
    run.PINNING = False  # see the module docstring: nothing is pinned here
    upstream = cache.start_backend(procs)
    for scenario, store, workers in RUNS:
        report["results"].append(bench_one(procs, args, upstream, scenario, store, workers))


def print_table(rows):
    by = {(r["scenario"], r["workers"]): r for r in rows}
    print("%-11s %10s %10s %7s %12s %12s" % ("scenario", "1 worker", "2 workers", "ratio",
                                           "p99 1w ms", "p99 2w ms"))
    for scenario in ("proxied-1k", "hit-1k"):
        one, two = by.get((scenario, 1)), by.get((scenario, 2))
        if one and two:
            print("%-11s %10.0f %10.0f %6.2fx %12.2f %12.2f" % (
                scenario, one["rps"], two["rps"], two["rps"] / one["rps"], one["p99_ms"],
                two["p99_ms"]))


def parse_args(argv: Optional[List[str]]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--label", default="cpython", help="a name for this interpreter")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    print("revproxy on %s, %d cores, nothing pinned; %d s per run" % (
        sys.executable, os.cpu_count() or 0, args.duration))
    report = {"duration": args.duration, "cores": os.cpu_count(), "results": []}
    started = time.monotonic()
    status = run.guarded("revproxy-bench-workers-", lambda procs: run_all(args, procs, report))
    print()
    print_table(report["results"])
    print("total run time: %.1f s" % (time.monotonic() - started))
    run.write_json(report, args.json)
    return status


if __name__ == "__main__":
    sys.exit(main())

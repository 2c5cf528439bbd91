"""Benchmark revproxy's HTTP cache hits against nginx proxy_cache and Varnish, with wrk.

Run with the venv's python from the repo root (see bench/README.md, "HTTP cache"):

    .venv/bin/python bench/cache.py [--duration 10] [--only revproxy,nginx-cache] [--json out.json]

The backend (nginx, every answer "Cache-Control: public, max-age=3600") and wrk share CPU 0;
each proxy runs alone on CPU 1. Each cache is warmed and its answers checked to be hits before
anything is measured; revproxy without a cache gives the cost of a proxied miss. Every process
started is killed at the end, even on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402  (reused: pinning, ports, processes, wrk, RSS, signals)

# Run order: the references first, then each revproxy with its cache and without.
NAMES = ("nginx-cache", "varnish", "revproxy-cpython", "revproxy-pypy",
         "revproxy-cpython-nocache", "revproxy-pypy-nocache",
         "revproxy-cpython-disk", "revproxy-cpython-disk-nomem")
REVPROXY_NAMES = tuple(name for name in NAMES if name.startswith("revproxy-"))
BASELINE = "nginx-cache"
WARM_REQUESTS = 3  # per path, after the one wait_ready sends
# Targets from bench/README.md: (proxy, scenario, baseline, bound), all on req/s.
TARGETS = (
    ("revproxy-cpython", "1k-c50", "nginx-cache", 0.3),
    ("revproxy-pypy", "1k-c50", "nginx-cache", 0.5),
    # A hit must cost less than half a proxied miss: more than twice the req/s.
    ("revproxy-cpython", "1k-c50", "revproxy-cpython-nocache", 2.0),
    ("revproxy-pypy", "1k-c50", "revproxy-pypy-nocache", 2.0),
    # issue 12: disk-store hits (I/O threads, memory tier) at least 0.8x memory-store hits
    ("revproxy-cpython-disk", "1k-c50", "revproxy-cpython", 0.8),
)

BACKEND = """    sendfile on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        add_header Cache-Control "public, max-age=3600";
        location = {status} {{ stub_status; }}
    }}
"""

# X-Cache-Status only lets the benchmark check that nginx answers from its cache.
NGINX_CACHE = """    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=bench:10m
                     max_size=256m inactive=1h use_temp_path=off;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive {idle};  # proxies.MAX_CONNECTIONS, as bench/run.py's nginx: no churn on misses
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
"""

REVPROXY_CONF = """[server]
listen = ["tcp:{port}:interface=127.0.0.1"]

[logging]
access_log = ""

[cache]
store = "{store}"
{store_options}
[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
"""


def launch(name: str, work: str, port: int, upstream: int) -> proxies.Launch:
    """How to start proxy ``name`` on ``port`` in front of 127.0.0.1:``upstream``."""
    if name.startswith("revproxy-"):
        venv = ".venv-pypy" if "-pypy" in name else ".venv"
        twistd = proxies.venv_bin(venv, "twistd")
        if twistd is None:
            return proxies.Launch([], "%s/ is missing (run scripts/setup-env)" % venv)
        conf = os.path.join(work, name + ".toml")
        store, store_options = "" if name.endswith("-nocache") else "memory", ""
        if "-disk" in name:  # the disk store; -nomem: every hit reads its file (a thread)
            store = "disk"
            store_options = "store_options = { path = %r%s }\n" % (
                os.path.join(work, name + "-store"),
                ", memory_bytes = 0" if name.endswith("-nomem") else "")
        with open(conf, "w") as f:
            f.write(REVPROXY_CONF.format(port=port, upstream=upstream, store=store,
                                         store_options=store_options))
        return proxies.Launch([twistd, "-n", "--pidfile=", "revproxy", "--config", conf],
                              env=proxies.revproxy_env())
    if name == "nginx-cache":
        body = NGINX_CACHE.format(work=work, port=port, upstream=upstream,
                                  idle=proxies.MAX_CONNECTIONS)
        return proxies.nginx_launch(work, name, body)
    if name == "varnish":
        return _varnish_launch(work, port, upstream)
    raise ValueError("unknown proxy %r" % (name,))


def _varnish_launch(work: str, port: int, upstream: int) -> proxies.Launch:
    varnishd = shutil.which("varnishd") or proxies._sbin("varnishd")
    if varnishd is None:
        return proxies.Launch([], "varnish is not installed (apt-get install varnish)")
    # -F: foreground; -n: its working directory (shared memory log) under the run's dir;
    # one thread pool, as the other proxies get one worker.
    return proxies.Launch([varnishd, "-F", "-a", "127.0.0.1:%d" % port,
                           "-b", "127.0.0.1:%d" % upstream, "-s", "malloc,64m",
                           "-n", os.path.join(work, "varnish"), "-p", "thread_pools=1"])


def _revproxy_hit(headers: Dict[str, str]) -> bool:
    status = headers.get("cache-status", "")
    return any(part.strip() == "hit" for part in status.split(";"))


def _varnish_hit(headers: Dict[str, str]) -> bool:
    return len(headers.get("x-varnish", "").split()) == 2  # this request's id, the object's


# name -> (does this answer show the behaviour we measure?, what was expected)
EXPECTED: Dict[str, Tuple[Callable[[Dict[str, str]], bool], str]] = {
    "nginx-cache": (lambda h: h.get("x-cache-status") == "HIT", "X-Cache-Status: HIT"),
    "varnish": (_varnish_hit, "X-Varnish with two ids (a hit)"),
    "revproxy-cpython": (_revproxy_hit, "Cache-Status with 'hit'"),
    "revproxy-pypy": (_revproxy_hit, "Cache-Status with 'hit'"),
    "revproxy-cpython-nocache": (lambda h: not _revproxy_hit(h), "no cache hit"),
    "revproxy-pypy-nocache": (lambda h: not _revproxy_hit(h), "no cache hit"),
    "revproxy-cpython-disk": (_revproxy_hit, "Cache-Status with 'hit'"),
    "revproxy-cpython-disk-nomem": (_revproxy_hit, "Cache-Status with 'hit'"),
}


def fetch_headers(port: int, path: str) -> Tuple[int, int, Dict[str, str]]:
    """GET ``path`` from 127.0.0.1:``port``: (status, body length, lower-cased headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, len(body), headers
    finally:
        conn.close()


def check_answer(name: str, port: int, path: str) -> None:
    """Raise RuntimeError unless ``path`` comes back whole and as ``name`` should answer it."""
    status, length, headers = fetch_headers(port, path)
    want_length = proxies.FILES[path.lstrip("/")]
    looks_right, expected = EXPECTED[name]
    if status != 200 or length != want_length or not looks_right(headers):
        shown = {k: v for k, v in headers.items()
                 if k in ("cache-status", "x-cache-status", "x-varnish", "age", "cache-control")}
        raise RuntimeError("%s %s: expected %s, got status %d, %d bytes, %s; not measured"
                           % (name, path, expected, status, length, shown))


def warm(name: str, port: int) -> None:
    """A few requests per path, so each cache holds both files; then check every answer."""
    for path in ("/" + f for f in proxies.FILES):
        for _ in range(WARM_REQUESTS):
            run.fetch(port, path)
        check_answer(name, port, path)


def bench_proxy(name: str, procs: run.Processes, upstream: int, duration: int) -> List[dict]:
    """Start ``name`` on CPU 1, warm and check it, run every scenario, stop it; result rows.

    Raises LookupError(reason) when skipped, RuntimeError when answers are not hits.
    """
    port = run.free_port()
    spec = launch(name, procs.work, port, upstream)
    if spec.skip:
        raise LookupError(spec.skip)
    proc = procs.start(name, spec.argv, cpu=1, env=spec.env)
    try:
        problem = run.wait_ready(proc, port)
        if problem:
            raise LookupError("did not start: %s\n%s" % (problem, procs.log_tail(name)))
        warm(name, port)
        # PyPy's JIT, on the hit path
        run.run_wrk(port, "/1k.bin", proxies.WARMUP_CONNECTIONS, run.WARMUP_SECONDS)
        rows = []
        for scenario, path, connections in run.SCENARIOS:
            check_answer(name, port, path)  # still a hit (or, without a cache, still a miss)
            row = run.measure(port, path, connections, duration, upstream, proc.pid)
            row.update(proxy=name, scenario=scenario)
            rows.append(row)
            run.print_progress(row)
            if proc.poll() is not None:
                print("  note: %s exited (%s) during %s" % (name, proc.returncode, scenario))
                break
        rss = run.peak_rss_kib(proc.pid)
        for row in rows:
            row["peak_rss_kib"] = rss
        return rows
    finally:
        procs.stop(proc)


def add_ratios(rows: List[dict]) -> None:
    """Ratios of each row to nginx proxy_cache, and of each revproxy hit row to its miss row."""
    by_key = {(row["proxy"], row["scenario"]): row for row in rows}
    for row in rows:
        base = by_key.get((BASELINE, row["scenario"]))
        miss = by_key.get((row["proxy"] + "-nocache", row["scenario"]))
        row["rps_ratio"] = _div(row["rps"], base and base["rps"])
        row["p99_ratio"] = _div(row["p99_ms"], base and base["p99_ms"])
        row["hit_miss_ratio"] = _div(row["rps"], miss and miss["rps"])


def _div(num: float, den: Optional[float]) -> Optional[float]:
    return num / den if den else None


def print_table(rows: List[dict]) -> None:
    header = ("proxy", "scenario", "req/s", "p50 ms", "p99 ms", "errors", "bk conns",
              "µs/req", "peak RSS", "req/s÷nginx", "p99÷nginx", "hit÷miss")
    fmt = "%-24s %-9s %9s %8s %8s %7s %8s %7s %9s %11s %10s %9s"
    print(fmt % header)
    for row in rows:
        print(fmt % (row["proxy"], row["scenario"], "%.0f" % row["rps"], "%.2f" % row["p50_ms"],
                     "%.2f" % row["p99_ms"], "%d" % row["errors"],
                     run._count(row.get("backend_conns")), run._us(row.get("cpu_us_per_req")),
                     "%.1f MiB" % (row["peak_rss_kib"] / 1024.0), run._ratio(row["rps_ratio"]),
                     run._ratio(row["p99_ratio"]), run._ratio(row["hit_miss_ratio"])))


def check_targets(rows: List[dict]) -> List[dict]:
    """Each target whose two sides both ran: the measured req/s ratio and whether it holds."""
    by_key = {(row["proxy"], row["scenario"]): row for row in rows}
    checks = []
    for proxy, scenario, baseline, bound in TARGETS:
        mine, base = by_key.get((proxy, scenario)), by_key.get((baseline, scenario))
        if not mine or not base or not base["rps"]:
            continue
        ratio = mine["rps"] / base["rps"]
        checks.append({"target": "%s hit %s req/s >= %.2fx %s" % (proxy, scenario, bound,
                                                                  baseline),
                       "ratio": ratio, "ok": ratio >= bound})
    return checks


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--only", default="", help="comma-separated subset of: "
                        + ", ".join(NAMES) + " ('revproxy' = the four revproxy runs)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second")
    wanted = set()
    for name in filter(None, (n.strip() for n in args.only.split(","))):
        if name not in NAMES + ("revproxy",):
            parser.error("unknown proxy %r; choose from %s" % (name, ", ".join(NAMES)))
        wanted.update(REVPROXY_NAMES if name == "revproxy" else (name,))
    args.names = [name for name in NAMES if name in wanted or not wanted]
    return args


def start_backend(procs: run.Processes) -> int:
    """Start the cacheable nginx backend on CPU 0; its port. Raises if it does not come up."""
    docroot = proxies.write_docroot(procs.work)
    port = run.free_port()
    spec = proxies.nginx_launch(procs.work, "backend",
                                BACKEND.format(port=port, docroot=docroot,
                                               status=proxies.BACKEND_STATUS))
    if spec.skip:
        raise RuntimeError("backend: " + spec.skip)
    proc = procs.start("backend", spec.argv, cpu=0)
    problem = run.wait_ready(proc, port)
    if problem:
        raise RuntimeError("backend (nginx) %s\n%s" % (problem, procs.log_tail("backend")))
    return port


def run_all(args, procs: run.Processes, report: dict) -> None:
    """Start the backend, then bench each selected proxy in turn; fills ``report``."""
    upstream = start_backend(procs)
    print("backend: nginx (Cache-Control: public, max-age=3600) on 127.0.0.1:%d" % upstream)
    for name in args.names:
        print("%s:" % name)
        try:
            report["results"].extend(bench_proxy(name, procs, upstream, args.duration))
        except (LookupError, RuntimeError) as e:  # not installed, did not start, not hits
            report["skipped"][name] = str(e)
            print("  note: skipped: %s" % e)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    per_proxy = run.WARMUP_SECONDS + len(run.SCENARIOS) * args.duration
    print("proxies: %s; about %d s each plus start-up; CPU pinning: %s" % (
        ", ".join(args.names), per_proxy, "on" if run.PINNING else "OFF"))
    report = {"duration": args.duration, "pinning": run.PINNING, "results": [],
              "skipped": {}, "targets": []}
    status = run.guarded("revproxy-bench-cache-", lambda procs: run_all(args, procs, report))
    finish(report, args, time.monotonic() - started)
    return status


def finish(report: dict, args, elapsed: float) -> None:
    """Print the table, the targets and the run time; write the JSON file if asked."""
    rows = report["results"]
    add_ratios(rows)
    report["targets"] = check_targets(rows)
    report["total_seconds"] = round(elapsed, 1)
    print()
    if rows:
        print_table(rows)
    for name, why in report["skipped"].items():
        print("skipped %s: %s" % (name, why.splitlines()[0]))
    for check in report["targets"]:
        print("target %-62s %6.2fx  %s" % (check["target"], check["ratio"],
                                          "ok" if check["ok"] else "MISSED"))
    print("total run time: %.1f s" % elapsed)
    run.write_json(report, args.json)


if __name__ == "__main__":
    sys.exit(main())

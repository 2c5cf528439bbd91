"""Benchmark response compression: revproxy gzip level 5 beside nginx `gzip on;
gzip_comp_level 5`, and a cached compressed hit beside a cached identity hit.

Run with the venv's python from the repo root (see bench/README.md, "Compression"):

    .venv/bin/python bench/compress.py [--duration 5] [--json out.json]

The backend (nginx, a 100 KiB HTML page, `Cache-Control: public, max-age=3600`) and wrk share
CPU 0; each proxy runs alone on CPU 1. Every scenario asks for /page.html with wrk; "gzip"
scenarios send `Accept-Encoding: gzip`. Bytes on the wire are the body bytes of one answer
(checked to decode to the page) and wrk's transfer per request (head included).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import random
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402  (reused: pinning, ports, processes, wrk, RSS, signals)

PAGE = "page.html"
GZIP = {"Accept-Encoding": "gzip"}
# (proxy, scenario, request headers)
PLAN = (
    ("nginx-gzip", "gzip", GZIP),
    ("revproxy-cpython-gzip", "gzip", GZIP),
    ("revproxy-cpython-gzip-zlib", "gzip", GZIP),
    ("revproxy-pypy-gzip", "gzip", GZIP),
    ("revproxy-cpython-cache", "gzip-hit", GZIP),
    ("revproxy-cpython-cache", "identity-hit", {}),
    ("revproxy-pypy-cache", "gzip-hit", GZIP),
    ("revproxy-pypy-cache", "identity-hit", {}),
)
NAMES = tuple(dict.fromkeys(name for name, _, _ in PLAN))

BACKEND = """    sendfile on;
    types {{ text/html html; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        add_header Cache-Control "public, max-age=3600";
        location = {status} {{ stub_status; }}
    }}
"""

NGINX_GZIP = """    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive {idle};
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        gzip on;
        gzip_comp_level 5;
        gzip_vary on;
        gzip_min_length 1024;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

REVPROXY_CONF = """[server]
listen = ["tcp:{port}:interface=127.0.0.1"]

[logging]
access_log = ""

[cache]
store = "{store}"

[compression]
codings = ["gzip"]
level = 5

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
compress = true
"""

WORDS = ("the proxy cache response request header body stream gzip level client server "
         "connection backend route pool member table row value item list page content "
         "type length chunk window deflate brotli zstd encoding vary etag").split()


def write_page(docroot: str) -> bytes:
    """A 100 KiB HTML page of seeded pseudo-text (compresses about as real pages do)."""
    rng = random.Random(13)
    parts = ["<!doctype html><html><head><title>bench</title></head><body>\n"]
    size = len(parts[0])
    while size < 100 * 1024:
        line = '<p class="c%d">%s</p>\n' % (rng.randrange(20), " ".join(
            rng.choice(WORDS) for _ in range(rng.randrange(8, 30))))
        parts.append(line)
        size += len(line)
    body = "".join(parts).encode("ascii")[:100 * 1024]
    with open(os.path.join(docroot, PAGE), "wb") as f:
        f.write(body)
    os.chmod(os.path.join(docroot, PAGE), 0o644)
    return body


def launch(name: str, work: str, port: int, upstream: int) -> proxies.Launch:
    if name == "nginx-gzip":
        return proxies.nginx_launch(work, name, NGINX_GZIP.format(
            port=port, upstream=upstream, idle=proxies.MAX_CONNECTIONS))
    venv = ".venv-pypy" if "-pypy" in name else ".venv"
    twistd = proxies.venv_bin(venv, "twistd")
    if twistd is None:
        return proxies.Launch([], "%s/ is missing (run scripts/setup-env)" % venv)
    conf = os.path.join(work, name + ".toml")
    with open(conf, "w") as f:
        f.write(REVPROXY_CONF.format(port=port, upstream=upstream,
                                     store="memory" if name.endswith("-cache") else ""))
    env = proxies.revproxy_env()
    if name.endswith("-zlib"):
        # isal hidden: gzip through the standard zlib, the library nginx uses
        hide = os.path.join(work, "no-isal", "isal")
        os.makedirs(hide, exist_ok=True)
        with open(os.path.join(hide, "__init__.py"), "w") as f:
            f.write("raise ImportError('hidden by bench/compress.py')\n")
        env = {"PYTHONPATH": os.path.dirname(hide) + os.pathsep + env["PYTHONPATH"]}
    return proxies.Launch([twistd, "-n", "--pidfile=", "revproxy", "--config", conf], env=env)


def one_answer(port: int, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/" + PAGE, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def check(name: str, port: int, headers: Dict[str, str], page: bytes) -> int:
    """The body bytes of one answer, after checking it decodes to the page (and, for the
    cache runs, that it is a hit)."""
    status, fields, body = one_answer(port, headers)
    coded = fields.get("content-encoding")
    plain = gzip.decompress(body) if coded == "gzip" else body
    if status != 200 or plain != page or (headers and coded != "gzip"):
        raise RuntimeError("%s: status %d, encoding %r, %d bytes: not the page" % (
            name, status, coded, len(body)))
    if name.endswith("-cache") and "hit" not in fields.get("cache-status", ""):
        raise RuntimeError("%s: not a hit: %r" % (name, fields.get("cache-status")))
    return len(body)


def wrk(port: int, headers: Dict[str, str], connections: int, seconds: int) -> dict:
    argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s",
            "--latency"]
    for key, value in headers.items():
        argv += ["-H", "%s: %s" % (key, value)]
    argv.append("http://127.0.0.1:%d/%s" % (port, PAGE))
    done = subprocess.run(run.pinned(0, argv), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError("wrk failed: " + text[-400:])
    row = run.parse_wrk(text)
    found = re.search(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", text)
    scale = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
    total = float(found.group(1)) * scale[found.group(2)] if found else 0.0
    row["wire_per_req"] = total / row["requests"] if row["requests"] else None
    return row


def bench_proxy(name, procs, upstream, page, duration) -> List[dict]:
    port = run.free_port()
    spec = launch(name, procs.work, port, upstream)
    if spec.skip:
        raise LookupError(spec.skip)
    proc = procs.start(name, spec.argv, cpu=1, env=spec.env)
    try:
        problem = run.wait_ready(proc, port)
        if problem:
            raise LookupError("did not start: %s\n%s" % (problem, procs.log_tail(name)))
        scenarios = [(s, h) for n, s, h in PLAN if n == name]
        for _, headers in scenarios:  # fill the cache's variants, warm the JIT
            for _ in range(3):
                one_answer(port, headers)
            wrk(port, headers, 50, run.WARMUP_SECONDS)
        rows = []
        for scenario, headers in scenarios:
            body = check(name, port, headers, page)
            cpu_before, started = run.cpu_seconds(proc.pid), time.monotonic()
            row = wrk(port, headers, 50, duration)
            cpu = run.cpu_seconds(proc.pid) - cpu_before
            row.update(proxy=name, scenario=scenario, body_bytes=body,
                       cpu_us_per_req=cpu * 1e6 / row["requests"] if row["requests"] else None,
                       cpu_busy=cpu / (time.monotonic() - started))
            rows.append(row)
            print("  %-14s %9.0f req/s  body %6d B  p99 %.2f ms" % (
                scenario, row["rps"], body, row["p99_ms"]))
        return rows
    finally:
        procs.stop(proc)


def print_table(rows: List[dict]) -> None:
    nginx = {r["scenario"]: r for r in rows if r["proxy"] == "nginx-gzip"}.get("gzip")
    fmt = "%-24s %-13s %9s %8s %8s %10s %10s %8s %6s %11s"
    print(fmt % ("proxy", "scenario", "req/s", "p50 ms", "p99 ms", "body B", "wire B/req",
                 "µs/req", "busy", "req/s÷nginx"))
    for r in rows:
        ratio = r["rps"] / nginx["rps"] if nginx and nginx["rps"] else None
        print(fmt % (r["proxy"], r["scenario"], "%.0f" % r["rps"], "%.2f" % r["p50_ms"],
                     "%.2f" % r["p99_ms"], r["body_bytes"],
                     "%.0f" % r["wire_per_req"] if r["wire_per_req"] else "-",
                     run._us(r.get("cpu_us_per_req")), run._busy(r.get("cpu_busy")),
                     run._ratio(ratio)))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario (5)")
    parser.add_argument("--only", default="", help="subset of: " + ", ".join(NAMES))
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    names = [n for n in NAMES if not args.only or n in args.only.split(",")]
    sys.stdout.reconfigure(line_buffering=True)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    report = {"duration": args.duration, "pinning": run.PINNING, "results": [], "skipped": {}}

    def body(procs):
        docroot = proxies.write_docroot(procs.work)
        page = write_page(docroot)
        port = run.free_port()
        spec = proxies.nginx_launch(procs.work, "backend", BACKEND.format(
            port=port, docroot=docroot, status=proxies.BACKEND_STATUS))
        if spec.skip:
            raise RuntimeError("backend: " + spec.skip)
        proc = procs.start("backend", spec.argv, cpu=0)
        problem = run.wait_ready(proc, port)
        if problem:
            raise RuntimeError("backend (nginx) %s" % problem)
        print("backend: nginx, /%s %d bytes, gzip -5 of it: %d bytes" % (
            PAGE, len(page), len(gzip.compress(page, 5))))
        for name in names:
            print("%s:" % name)
            try:
                report["results"].extend(bench_proxy(name, procs, port, page, args.duration))
            except (LookupError, RuntimeError) as e:
                report["skipped"][name] = str(e)
                print("  note: skipped: %s" % e)

    status = run.guarded("revproxy-bench-compress-", body)
    print()
    if report["results"]:
        print_table(report["results"])
    for name, why in report["skipped"].items():
        print("skipped %s: %s" % (name, why.splitlines()[0]))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())

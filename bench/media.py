"""Large media from the cache: a 200 MiB object, 20 clients each fetching random 1 MiB ranges,
revproxy's disk store beside nginx ``proxy_cache`` with ``slice 1m``, in one run.

Run with a venv's python from the repo root (see bench/README.md, "Large media"):

    .venv/bin/python bench/media.py [--duration 10] [--only nginx-slice,revproxy-cpython]

The backend (nginx serving the file, strong ETag, "Cache-Control: public, max-age=3600") and
wrk share CPU 0; each proxy runs alone on CPU 1. The client is wrk with a Lua script: every
request asks for ``Range: bytes=F-(F+1MiB-1)``, F uniformly random (not slice-aligned), so a
range spans two 1 MiB slices in nginx. Each cache is first filled by one whole GET, and checked
to answer ranges from its cache with the right bytes, before anything is measured. Reported:
req/s, MiB/s, p50/p99, errors, and the proxy's peak RSS (VmHWM, the fill included).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import subprocess
import tempfile
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402

NAMES = ("nginx-slice", "revproxy-cpython", "revproxy-pypy")
SIZE = 200 * 1024 * 1024
SPAN = 1024 * 1024
CLIENTS = 20
PATH = "/big.bin"

BACKEND = """    sendfile on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        add_header Cache-Control "public, max-age=3600";
    }}
"""

NGINX_SLICE = """    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=media:10m
                     max_size=1g inactive=1h use_temp_path=off;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            slice 1m;
            proxy_cache media;
            proxy_cache_key $uri$is_args$args$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
"""

REVPROXY_CONF = """[server]
listen = ["tcp:{port}:interface=127.0.0.1"]

[logging]
access_log = ""

[cache]
store = "disk"
store_options = {{ path = "{store}", max_bytes = "1g" }}

[pools.media]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "media"
"""

RANGES_LUA = """local size, span = %d, %d
function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end
function init(args)
  math.randomseed(seed + os.time())
end
function request()
  local first = math.random(0, size - span)
  return wrk.format("GET", "%s", {["Range"] = "bytes=" .. first .. "-" .. (first + span - 1)})
end
""" % (SIZE, SPAN, PATH)


def write_media(work: str) -> str:
    """``work``/www/big.bin: SIZE bytes, deterministic, every MiB different."""
    docroot = proxies.write_docroot(work)  # the small files run.wait_ready asks for
    rng = random.Random(12)
    block = bytes(rng.getrandbits(8) for _ in range(65536))
    with open(os.path.join(docroot, "big.bin"), "wb") as f:
        for i in range(SIZE // len(block)):
            f.write(block[i % 251:] + block[:i % 251])
    os.chmod(docroot, 0o755)
    os.chmod(os.path.join(docroot, "big.bin"), 0o644)
    return docroot


def get(port: int, headers: Optional[Dict[str, str]] = None, timeout: float = 120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", PATH, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def is_hit(name: str, headers: Dict[str, str]) -> bool:
    if name == "nginx-slice":
        return headers.get("x-cache-status") == "HIT"
    parts = [p.strip() for p in headers.get("cache-status", "").split(";")]
    return "hit" in parts and "detail=filling" not in parts


def fill_and_check(name: str, port: int, media: str) -> None:
    """One whole GET fills the cache; then ranges must be hits with the file's bytes."""
    status, _, body = get(port)
    if status != 200 or len(body) != SIZE:
        raise RuntimeError("%s: whole GET gave %d, %d bytes" % (name, status, len(body)))
    with open(media, "rb") as f:
        for first in (0, SIZE - SPAN, 12345678, 150 * SPAN + 7):
            for _ in range(50):  # bounded: the store writes its record after the fill
                status, headers, body = get(port, {"Range": "bytes=%d-%d"
                                                   % (first, first + SPAN - 1)})
                if is_hit(name, headers):
                    break
                time.sleep(0.1)
            f.seek(first)
            if status != 206 or body != f.read(SPAN) or not is_hit(name, headers):
                raise RuntimeError("%s: range at %d: %d, hit=%s, bytes %s" % (
                    name, first, status, is_hit(name, headers), "ok" if status == 206 else "-"))


def run_wrk_ranges(work: str, port: int, seconds: int) -> dict:
    script = os.path.join(work, "ranges.lua")
    with open(script, "w") as f:
        f.write(RANGES_LUA)
    argv = run.pinned(0, ["wrk", "-t2", "-c%d" % CLIENTS, "-d%ds" % seconds, "--timeout", "10s",
                          "--latency", "-s", script, "http://127.0.0.1:%d%s" % (port, PATH)])
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError("wrk failed (%s): %s" % (done.returncode, text.strip()[-500:]))
    return run.parse_wrk(text)


def launch(name: str, work: str, port: int, upstream: int, venv_root: str) -> proxies.Launch:
    if name == "nginx-slice":
        return proxies.nginx_launch(work, name, NGINX_SLICE.format(
            work=work, port=port, upstream=upstream))
    venv = ".venv-pypy" if name.endswith("-pypy") else ".venv"
    twistd = os.path.join(venv_root, venv, "bin", "twistd")
    if not os.access(twistd, os.X_OK):
        return proxies.Launch([], "%s is missing" % twistd)
    conf = os.path.join(work, name + ".toml")
    with open(conf, "w") as f:
        f.write(REVPROXY_CONF.format(port=port, upstream=upstream,
                                     store=os.path.join(work, name + "-store")))
    return proxies.Launch([twistd, "-n", "--pidfile=", "revproxy", "--config", conf],
                          env=proxies.revproxy_env())


def bench(name, procs, upstream, media, args) -> Optional[dict]:
    port = run.free_port()
    spec = launch(name, procs.work, port, upstream, args.venv_root)
    if spec.skip:
        print("  %s skipped: %s" % (name, spec.skip))
        return None
    proc = procs.start(name, spec.argv, cpu=1, env=spec.env)
    try:
        problem = run.wait_ready(proc, port)
        if problem:
            raise RuntimeError("%s did not start: %s\n%s" % (name, problem, procs.log_tail(name)))
        fill_and_check(name, port, media)
        filled_rss = run.peak_rss_kib(proc.pid)
        run_wrk_ranges(procs.work, port, 2)  # warm-up (PyPy's JIT)
        before = run.cpu_seconds(proc.pid)
        row = run_wrk_ranges(procs.work, port, args.duration)
        cpu = run.cpu_seconds(proc.pid) - before
        row.update(proxy=name, mib_s=row["rps"] * SPAN / 1048576.0, fill_rss_kib=filled_rss,
                   peak_rss_kib=run.peak_rss_kib(proc.pid),
                   cpu_us_per_req=cpu * 1e6 / row["requests"] if row["requests"] else None)
        print("  %-18s %8.0f req/s %8.0f MiB/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  "
              "peak RSS %.1f MiB (%.1f MiB after the fill)" % (
                  name, row["rps"], row["mib_s"], row["p50_ms"], row["p99_ms"], row["errors"],
                  row["peak_rss_kib"] / 1024.0, filled_rss / 1024.0))
        return row
    finally:
        procs.stop(proc)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--only", default="", help="subset of: " + ", ".join(NAMES))
    parser.add_argument("--venv-root", default=proxies.REPO,
                        help="where .venv and .venv-pypy are (default: this checkout)")
    args = parser.parse_args(argv)
    names = [n for n in NAMES if not args.only or n in args.only.split(",")]
    work = tempfile.mkdtemp(prefix="revproxy-media-")
    os.chmod(work, 0o755)  # nginx's unprivileged worker reads the docroot
    procs = run.Processes(work)
    try:
        docroot = write_media(work)
        upstream = run.free_port()
        spec = proxies.nginx_launch(work, "backend", BACKEND.format(port=upstream,
                                                                     docroot=docroot))
        if spec.skip:
            raise RuntimeError(spec.skip)
        backend = procs.start("backend", spec.argv, cpu=0)
        problem = run.wait_ready(backend, upstream)
        if problem:
            raise RuntimeError("backend: %s" % problem)
        print("200 MiB object, %d clients, random 1 MiB ranges (wrk + Lua), %d s"
              % (CLIENTS, args.duration))
        for name in names:
            bench(name, procs, upstream, os.path.join(docroot, "big.bin"), args)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the firewall: a benign 1 KiB GET and a 4 KiB form POST through revproxy with the
CRS at paranoia level 1 on and with the firewall off, CPython and PyPy, in one run; the same
two with values that change on every request ("-fresh": a query id and a session cookie,
every form field); then the time of single requests carrying large adversarial bodies (the
limits must hold).

Run with the venv's python from the repo root (see bench/README.md, "Firewall"):

    .venv/bin/python bench/firewall.py [--duration 5] [--rounds 3] [--crs DIR] [--json out.json]
        [--venvs /work/main]   # from a worktree without venvs of its own

The backend (nginx: /1k.bin static, /form answers 200 to a POST) and wrk share CPU 0. The
"off" and "crs" proxies of an interpreter run side by side on CPU 1, one loaded at a time:
each scenario alternates between them ``--rounds`` times and the ratio is the median of
the per-round ratios (the shared VM's speed drifts by tens of percent within minutes). Requests carry a browser-like Host, User-Agent and Accept (wrk's
bare requests would match CRS rule 920350, a numeric Host, and log a line each).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402  (reused: pinning, ports, processes, wrk, signals)

DEFAULT_CRS = os.path.join(os.path.dirname(proxies.REPO), "shared", "crs-v4.28.0")
HEADERS = {"Host": "bench.example", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
           "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128"}
FORM = "&".join("field%d=%s" % (i, ("value-%d-" % i + "abcdefghij" * 6)[:70])
                for i in range(56))[:4096]
NAMES = ("revproxy-cpython-off", "revproxy-cpython-crs", "revproxy-pypy-off",
         "revproxy-pypy-crs")
SCENARIOS = ("get-1k", "post-4k", "get-1k-fresh", "post-4k-fresh")
NO_FILES_LIMIT = 131072  # the default [firewall] request_body_no_files_limit
UPLOAD_SIZE = 8 * 1024 * 1024  # under the default max_body_size (10m) and body limit

BACKEND = """    sendfile on;
    default_type application/octet-stream;
    client_max_body_size 16m;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location = /form {{ client_body_buffer_size 64k; return 200 "ok\\n"; }}
        location = {status} {{ stub_status; }}
    }}
"""

CONF = """[logging]
access_log = ""

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"

[firewall]
mode = "{mode}"
crs = "{crs}"
paranoia_level = 1
"""

POST_LUA = """wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
"""
# "fresh": the same requests with values no earlier request had (a query id and a session
# cookie on the GET, every field of the form), so the engine's records of values seen
# clean (docs/firewall-engine.md) cannot cover them
GET_FRESH_LUA = """counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/1k.bin?id=" .. counter .. "&ref=p" .. counter .. "q",
                    {["Cookie"] = string.format("session=%016x", counter)})
end
"""
POST_FRESH_LUA = """counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  counter = counter + 1
  local parts = {}
  for i = 0, 55 do
    local v = ("value-" .. i .. "-" .. counter .. "-" .. string.rep("abcdefghij", 6))
    parts[#parts + 1] = "field" .. i .. "=" .. v:sub(1, 70)
  end
  return wrk.format(nil, "/form", nil, table.concat(parts, "&"):sub(1, 4096))
end
"""


def _cut(text: str, size: int, sep: str = "") -> str:
    text = text[:size]
    return text[:text.rfind(sep)] if sep and sep in text else text


def adversarial_bodies():
    """Bodies meant to cost the engine the most: at the no-files limit (inspected whole:
    the worst case the defaults let through) many arguments, one argument of near-matches
    for the SQL and XSS patterns, nested JSON, many multipart fields; over it (refused with
    413 before the engine); an 8 MiB multipart upload of near-matches (a file: parsed, not
    counted against the no-files limit)."""
    many = "&".join("a%d=%s" % (i, "1' or '" if i % 2 else "<scr") for i in range(130000))
    near = "q=" + ("select/*" + "x" * 60 + "*/ from " + "'" * 20 + "(" * 20) * 80000
    half = NO_FILES_LIMIT // 2
    fields = "".join('--XyZ\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n'
                     "1' or 1=1 <scr\r\n" % i for i in range(5000))
    fields = _cut(fields, NO_FILES_LIMIT - 16, "--XyZ") + "--XyZ--\r\n"
    upload = ('--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
              "Content-Type: text/plain\r\n\r\n" + _cut(near, UPLOAD_SIZE) + "\r\n--XyZ--\r\n")
    form, multipart = "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ"
    return [
        ("many-args", form, _cut(many, NO_FILES_LIMIT, "&")),
        ("near-miss", form, _cut(near, NO_FILES_LIMIT)),
        ("deep-json", "application/json", "[" * half + "]" * half),
        ("mp-fields", multipart, fields),
        ("many-args-1m", form, _cut(many, 1024 * 1024, "&")),
        ("upload-8m", multipart, upload),
    ]


def launch(name: str, work: str, port: int, upstream: int, crs: str,
           venvs: str = proxies.REPO) -> proxies.Launch:
    venv = ".venv-pypy" if "-pypy" in name else ".venv"
    twistd = os.path.join(venvs, venv, "bin", "twistd")
    if not os.access(twistd, os.X_OK):
        return proxies.Launch([], "%s is missing (run scripts/setup-env)" % twistd)
    conf = os.path.join(work, name + ".toml")
    with open(conf, "w") as f:
        f.write(CONF.format(upstream=upstream, mode="on" if name.endswith("-crs") else "off",
                            crs=crs))
    return proxies.Launch([twistd, "-n", "--pidfile=", "revproxy", "--config", conf,
                           "--listen", "tcp:%d:interface=127.0.0.1" % port],
                          env=proxies.revproxy_env())


def request(port: int, method: str, path: str, body: Optional[str] = None,
            ctype: Optional[str] = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = dict(HEADERS)
        if ctype:
            headers["Content-Type"] = ctype
        started = time.perf_counter()
        conn.request(method, path, body=body.encode() if body else None, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def wrk(port: int, scenario: str, work: str, seconds: int) -> dict:
    argv = ["wrk", "-t1", "-c50", "-d%ds" % seconds, "--timeout", "10s", "--latency"]
    for key, value in HEADERS.items():
        argv += ["-H", "%s: %s" % (key, value)]
    lua = {"post-4k": POST_LUA.format(body=FORM), "get-1k-fresh": GET_FRESH_LUA,
           "post-4k-fresh": POST_FRESH_LUA}.get(scenario)
    if lua is not None:
        script = os.path.join(work, scenario + ".lua")
        with open(script, "w") as f:
            f.write(lua)
        argv += ["-s", script]
    argv.append("http://127.0.0.1:%d/%s" % (port, "form" if "post" in scenario else "1k.bin"))
    done = subprocess.run(run.pinned(0, argv), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError("wrk failed: " + text[-400:])
    return run.parse_wrk(text)


def adversarial(port: int, repeat: int) -> List[dict]:
    rows = []
    for label, ctype, body in adversarial_bodies():
        times, statuses = [], set()
        for _ in range(repeat):
            status, seconds = request(port, "POST", "/form", body, ctype)
            statuses.add(status)
            times.append(seconds * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        rows.append({"body": label, "bytes": len(body), "statuses": sorted(statuses),
                     "p99_ms": p99, "max_ms": times[-1], "median_ms": times[len(times) // 2]})
        print("  adversarial %-10s %8d B  status %s  median %.1f ms  p99 %.1f ms  max %.1f ms"
              % (label, len(body), sorted(statuses), times[len(times) // 2], p99, times[-1]))
    return rows


def _start(name, procs, upstream, args):
    """Start proxy ``name`` on CPU 1, check it answers an attack as its mode says, warm it
    (the JIT, the pools, the engine's records); its (process, port)."""
    port = run.free_port()
    spec = launch(name, procs.work, port, upstream, args.crs, args.venvs)
    if spec.skip:
        raise LookupError(spec.skip)
    proc = procs.start(name, spec.argv, cpu=1, env=spec.env)
    problem = run.wait_ready(proc, port)
    if problem:
        procs.stop(proc)
        raise LookupError("did not start: %s\n%s" % (problem, procs.log_tail(name)))
    status, _ = request(port, "GET", "/1k.bin?id=1%27%20or%201=1--")
    expected = 403 if name.endswith("-crs") else 200
    if status != expected:
        procs.stop(proc)
        raise RuntimeError("%s: an attack got %d, expected %d" % (name, status, expected))
    for scenario in SCENARIOS:
        wrk(port, scenario, procs.work, run.WARMUP_SECONDS)
    return proc, port


def _measure(name, proc, port, scenario, procs, args) -> dict:
    cpu_before, started = run.cpu_seconds(proc.pid), time.monotonic()
    row = wrk(port, scenario, procs.work, args.duration)
    cpu = run.cpu_seconds(proc.pid) - cpu_before
    row.update(proxy=name, scenario=scenario,
               cpu_us_per_req=cpu * 1e6 / row["requests"] if row["requests"] else None,
               cpu_busy=cpu / (time.monotonic() - started))
    return row


def bench_pair(pair, procs, upstream, args):
    """The "off" and "crs" proxies of one interpreter side by side (both on CPU 1, one
    loaded at a time): each scenario alternates between them, ``args.rounds`` times, so a
    ratio compares two measurements taken seconds apart on a VM whose speed drifts. Each
    (proxy, scenario) row is its median round; a "crs" row's ``ratio`` is the median of
    its per-round ratios to "off". Then the adversarial bodies on "crs"."""
    started = {}
    try:
        for name in pair:
            started[name] = _start(name, procs, upstream, args)
        rounds = {(name, s): [] for name in started for s in SCENARIOS}
        for i in range(args.rounds):
            for scenario in SCENARIOS:
                for name, (proc, port) in started.items():
                    row = _measure(name, proc, port, scenario, procs, args)
                    rounds[(name, scenario)].append(row)
                    print("  round %d %-22s %-13s %7.0f req/s  p99 %.2f ms  errors %d" % (
                        i + 1, name, scenario, row["rps"], row["p99_ms"], row["errors"]))
        rows = []
        for (name, scenario), got in rounds.items():
            row = dict(sorted(got, key=lambda r: r["rps"])[len(got) // 2])
            off = rounds.get((name.rsplit("-", 1)[0] + "-off", scenario))
            if name.endswith("-crs") and off:
                ratios = sorted(c["rps"] / o["rps"] for c, o in zip(got, off) if o["rps"])
                row["ratio"] = ratios[len(ratios) // 2] if ratios else None
                row["ratios"] = ratios
            rows.append(row)
        extra = {}
        for name, (proc, port) in started.items():
            if name.endswith("-crs"):
                extra[name] = adversarial(port, args.repeat)
        return rows, extra
    finally:
        for proc, _port in started.values():
            procs.stop(proc)


def print_table(rows: List[dict]) -> None:
    off = {(r["proxy"].rsplit("-", 1)[0], r["scenario"]): r["rps"] for r in rows
           if r["proxy"].endswith("-off")}
    fmt = "%-22s %-8s %9s %8s %8s %8s %6s %9s"
    print(fmt % ("proxy", "scenario", "req/s", "p50 ms", "p99 ms", "µs/req", "busy", "÷ off"))
    for r in rows:
        base = off.get((r["proxy"].rsplit("-", 1)[0], r["scenario"]))
        ratio = r.get("ratio", r["rps"] / base if base else None)
        print(fmt % (r["proxy"], r["scenario"], "%.0f" % r["rps"], "%.2f" % r["p50_ms"],
                     "%.2f" % r["p99_ms"], run._us(r.get("cpu_us_per_req")),
                     run._busy(r.get("cpu_busy")), run._ratio(ratio)))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario (5)")
    parser.add_argument("--crs", default=DEFAULT_CRS, help="CRS directory (%(default)s)")
    parser.add_argument("--repeat", type=int, default=20,
                        help="requests per adversarial body (20)")
    parser.add_argument("--only", default="", help="subset of: " + ", ".join(NAMES))
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternations of each scenario between off and crs (3)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--venvs", default=proxies.REPO,
                        help="the checkout whose .venv and .venv-pypy run the proxy (this "
                        "one); revproxy is imported from this checkout either way")
    args = parser.parse_args(argv)
    names = [n for n in NAMES if not args.only or n in args.only.split(",")]
    sys.stdout.reconfigure(line_buffering=True)
    problem = proxies.missing("wrk", args.crs)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    report = {"duration": args.duration, "crs": args.crs, "load": os.getloadavg(),
              "results": [], "adversarial": {}, "skipped": {}}
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())

    def body(procs):
        docroot = proxies.write_docroot(procs.work)
        port = run.free_port()
        spec = proxies.nginx_launch(procs.work, "backend", BACKEND.format(
            port=port, docroot=docroot, status=proxies.BACKEND_STATUS))
        if spec.skip:
            raise RuntimeError("backend: " + spec.skip)
        proc = procs.start("backend", spec.argv, cpu=0)
        problem = run.wait_ready(proc, port)
        if problem:
            raise RuntimeError("backend (nginx) %s" % problem)
        for impl in ("cpython", "pypy"):
            pair = [n for n in names if n.startswith("revproxy-%s-" % impl)]
            if not pair:
                continue
            print("%s:" % " + ".join(pair))
            try:
                rows, extra = bench_pair(pair, procs, port, args)
                report["results"].extend(rows)
                report["adversarial"].update(extra)
            except (LookupError, RuntimeError) as e:
                for name in pair:
                    report["skipped"][name] = str(e)
                print("  note: skipped: %s" % e)

    status = run.guarded("revproxy-bench-firewall-", body)
    print()
    if report["results"]:
        print_table(report["results"])
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    for name, why in report["skipped"].items():
        print("skipped %s: %s" % (name, why.splitlines()[0]))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark revproxy's TLS offload and HTTP/2 against nginx with the same certificates.

Run with the venv's python from the repo root (see bench/README.md, "TLS and HTTP/2"):

    .venv/bin/python bench/tls.py [--duration 10] [--rounds 3] [--only nginx,revproxy-cpython]
                                  [--json out.json]

Each proxy listens twice, one port with an RSA-2048 certificate and one with an ECDSA P-256
certificate (made by ``openssl`` for this run), in front of the fixed nginx backend over plain
HTTP. Scenarios, all on a 1 KiB file:

- ``handshake-rsa`` / ``handshake-ecdsa``: wrk with ``Connection: close``, so every request is
  a new TCP connection and a full TLS handshake (wrk resumes no session): req/s = handshakes/s;
- ``https-keepalive``: wrk, 50 keep-alive connections, RSA port;
- ``h2``: h2load (Debian's ``nghttp2-client``), 10 connections x 10 concurrent streams, RSA
  port; skipped for a proxy whose ALPN does not offer h2.

The backend and the load generator share CPU 0; the proxies run on CPU 1, one worker, one
measured at a time. The proxies take turns: each round runs every scenario on every proxy
back to back, a ratio to nginx is taken within a round, and the table gives the median of
``--rounds`` rounds (default 3) with the range, so a shared machine changing speed between
minutes moves both sides of a ratio alike.
Every address is 127.0.0.1; every process started is killed at the end, even on error.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402  (reused: pinning, ports, processes, wrk, CPU, RSS, signals)

NAMES = ("nginx", "revproxy-cpython", "revproxy-pypy")
CONNECTIONS = 50
H2_CONNECTIONS, H2_STREAMS = 10, 10
# Targets from issue 8 (CPython): (proxy, scenario, baseline, bound) on req/s.
TARGETS = (
    ("revproxy-cpython", "handshake-rsa", "nginx", 0.5),
    ("revproxy-cpython", "handshake-ecdsa", "nginx", 0.5),
    ("revproxy-cpython", "https-keepalive", "nginx", 0.25),
    ("revproxy-cpython", "h2", "nginx", 0.25),
)

NGINX_TLS = """    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive {idle};
        keepalive_requests 1000000;
    }}
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {{
        listen 127.0.0.1:{rsa_port} ssl http2;
        ssl_certificate {work}/rsa.pem;
        ssl_certificate_key {work}/rsa.key;
        keepalive_requests 1000000;
        http2_max_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{ecdsa_port} ssl http2;
        ssl_certificate {work}/ecdsa.pem;
        ssl_certificate_key {work}/ecdsa.key;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

REVPROXY_CONF = """[server]
listen = ["ssl:{rsa_port}:interface=127.0.0.1:privateKey={work}/rsa.key:certKey={work}/rsa.pem",
          "ssl:{ecdsa_port}:interface=127.0.0.1:privateKey={work}/ecdsa.key:certKey={work}/ecdsa.pem"]

[logging]
access_log = ""

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
"""


def make_certificates(work: str) -> None:
    """rsa.pem/rsa.key (RSA 2048) and ecdsa.pem/ecdsa.key (P-256), self-signed for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    for name, key in (("rsa", ["-newkey", "rsa:2048"]),
                      ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])):
        subprocess.run([openssl, "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"] + key
                       + ["-keyout", os.path.join(work, name + ".key"),
                          "-out", os.path.join(work, name + ".pem")],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.chmod(os.path.join(work, name + ".key"), 0o644)  # nginx's worker reads it


def launch(name: str, work: str, rsa_port: int, ecdsa_port: int, upstream: int) -> proxies.Launch:
    if name.startswith("revproxy-"):
        venv = ".venv-pypy" if name.endswith("-pypy") else ".venv"
        twistd = proxies.venv_bin(venv, "twistd")
        if twistd is None:
            return proxies.Launch([], "%s/ is missing (run scripts/setup-env)" % venv)
        conf = os.path.join(work, name + ".toml")
        with open(conf, "w") as f:
            f.write(REVPROXY_CONF.format(rsa_port=rsa_port, ecdsa_port=ecdsa_port, work=work,
                                         upstream=upstream))
        return proxies.Launch([twistd, "-n", "--pidfile=", "revproxy", "--config", conf],
                              env=proxies.revproxy_env())
    if name == "nginx":
        body = NGINX_TLS.format(work=work, rsa_port=rsa_port, ecdsa_port=ecdsa_port,
                                upstream=upstream, idle=proxies.MAX_CONNECTIONS)
        return proxies.nginx_launch(work, "nginx-tls", body)
    raise ValueError("unknown proxy %r" % (name,))


def https_ready(proc, port: int, timeout: float = run.READY_TIMEOUT) -> Optional[str]:
    """None once https://127.0.0.1:port/1k.bin answers 200 (certificate not checked)."""
    import http.client
    import ssl

    context = ssl._create_unverified_context()
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited with status %s" % proc.returncode
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
        try:
            conn.request("GET", "/1k.bin")
            response = conn.getresponse()
            body = response.read()
            if response.status == 200 and len(body) == 1024:
                return None
            last = "answered %d with %d bytes" % (response.status, len(body))
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()
        time.sleep(0.2)
    return "not ready after %.0f s (%s)" % (timeout, last)


def alpn_offers_h2(port: int) -> bool:
    import socket
    import ssl

    context = ssl._create_unverified_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.selected_alpn_protocol() == "h2"
    except (OSError, ssl.SSLError) as e:  # e.g. a server that fails on an ALPN offer
        print("  note: handshake offering ALPN h2 failed: %s" % e)
        return False


def wrk(port: int, connections: int, seconds: int, close: bool) -> Dict[str, float]:
    argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append("https://127.0.0.1:%d/1k.bin" % port)
    done = subprocess.run(run.pinned(0, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError("wrk failed (%s): %s" % (done.returncode, text.strip()[-500:]))
    return run.parse_wrk(text)


def h2load(port: int, seconds: int) -> Dict[str, float]:
    program = shutil.which("h2load")
    if program is None:
        raise LookupError("h2load is not installed (apt-get install nghttp2-client)")
    argv = [program, "-c%d" % H2_CONNECTIONS, "-m%d" % H2_STREAMS, "-D%d" % seconds,
            "--warm-up-time=1", "https://127.0.0.1:%d/1k.bin" % port]
    done = subprocess.run(run.pinned(0, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    return parse_h2load(text, done.returncode)


def parse_h2load(text: str, returncode: int = 0) -> Dict[str, float]:
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    status = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored", text)
    if returncode != 0 or not rps or not status:
        raise RuntimeError("h2load failed (%s): %s" % (returncode, text.strip()[-500:]))
    protocol = re.search(r"Application protocol: (\S+)", text)
    if not protocol or protocol.group(1) != "h2":
        raise RuntimeError("h2load did not negotiate h2: %s" % text.strip()[-300:])
    total, _, _, ok, failed, errored = (int(n) for n in status.groups())
    return {"rps": float(rps.group(1)), "requests": float(ok),
            "errors": float(failed + errored), "p50_ms": None, "p99_ms": None}


class Running:
    """One proxy started for the run: its process, ports and the scenarios it can serve."""

    def __init__(self, name: str, proc, rsa_port: int, ecdsa_port: int, h2: bool):
        self.name, self.proc = name, proc
        self.rsa_port, self.ecdsa_port, self.h2 = rsa_port, ecdsa_port, h2

    def measures(self, duration: int):
        plan = {"handshake-rsa": lambda: wrk(self.rsa_port, CONNECTIONS, duration, close=True),
                "handshake-ecdsa": lambda: wrk(self.ecdsa_port, CONNECTIONS, duration,
                                               close=True),
                "https-keepalive": lambda: wrk(self.rsa_port, CONNECTIONS, duration,
                                               close=False)}
        if self.h2:
            plan["h2"] = lambda: h2load(self.rsa_port, duration)
        return plan


def start_proxy(name: str, procs: run.Processes, upstream: int) -> Running:
    rsa_port, ecdsa_port = run.free_port(), run.free_port()
    found = launch(name, procs.work, rsa_port, ecdsa_port, upstream)
    if found.skip:
        raise LookupError(found.skip)
    proc = procs.start(name, found.argv, cpu=1, env=found.env)
    for port in (rsa_port, ecdsa_port):
        problem = https_ready(proc, port)
        if problem:
            procs.stop(proc)
            raise LookupError("did not start: %s\n%s" % (problem, procs.log_tail(name)))
    wrk(rsa_port, CONNECTIONS, 2, close=False)  # warm-up (and the backend pool)
    h2 = alpn_offers_h2(rsa_port)
    if not h2:
        print("  note: %s does not offer h2 in ALPN: h2 skipped" % name)
    return Running(name, proc, rsa_port, ecdsa_port, h2)


def measure_one(running: Running, scenario: str, duration: int, round_: int) -> Optional[dict]:
    measure = running.measures(duration).get(scenario)
    if measure is None or running.proc.poll() is not None:
        return None
    pid = running.proc.pid
    cpu_before, started = run.cpu_seconds(pid), time.monotonic()
    row = measure()
    cpu = run.cpu_seconds(pid) - cpu_before
    row["cpu_us_per_req"] = cpu * 1e6 / row["requests"] if row["requests"] else None
    row["cpu_busy"] = cpu / (time.monotonic() - started)
    row.update(proxy=running.name, scenario=scenario, round=round_)
    print("  round %d %-18s %-16s %9.0f req/s  %s CPU µs/req (%s busy)  errors %d"
          % (round_, running.name, scenario, row["rps"], run._us(row["cpu_us_per_req"]),
             run._busy(row["cpu_busy"]), row["errors"]))
    if running.proc.poll() is not None:
        print("  note: %s exited (%s) during %s" % (running.name, running.proc.returncode,
                                                   scenario))
    return row


def _median(values: List[float]) -> Optional[float]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def add_ratios(rows: List[dict]) -> None:
    """Each row's ratio to nginx's row of the same scenario and round (measured next to it,
    so a change in the machine's speed between rounds cancels out)."""
    nginx = {(row["scenario"], row.get("round", 1)): row for row in rows
             if row["proxy"] == "nginx"}
    for row in rows:
        base = nginx.get((row["scenario"], row.get("round", 1)))
        row["rps_ratio"] = row["rps"] / base["rps"] if base and base["rps"] else None


def summarize(rows: List[dict]) -> List[dict]:
    """One row per (proxy, scenario): medians over the rounds, with the ratios' range."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["proxy"], row["scenario"]), []).append(row)
    summary = []
    for (proxy, scenario), group in groups.items():
        ratios = [r["rps_ratio"] for r in group if r.get("rps_ratio") is not None]
        summary.append({
            "proxy": proxy, "scenario": scenario, "rounds": len(group),
            "rps": _median([r["rps"] for r in group]),
            "cpu_us_per_req": _median([r["cpu_us_per_req"] for r in group]),
            "errors": sum(r["errors"] for r in group),
            "rps_ratio": _median(ratios),
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "peak_rss_kib": max(r.get("peak_rss_kib", 0) for r in group)})
    return summary


def print_table(rows: List[dict]) -> None:
    print("\n%-18s %-16s %10s %8s %13s %10s %8s %10s" % (
        "proxy", "scenario", "req/s", "× nginx", "(range)", "CPU µs/req", "errors", "RSS MiB"))
    for row in rows:
        spread = ("%.2f-%.2f" % (row["ratio_min"], row["ratio_max"])
                  if row.get("ratio_min") is not None else "")
        print("%-18s %-16s %10.0f %8s %13s %10s %8d %10.1f"
              % (row["proxy"], row["scenario"], row["rps"], run._ratio(row.get("rps_ratio")),
                 spread, run._us(row.get("cpu_us_per_req")), row["errors"],
                 row.get("peak_rss_kib", 0) / 1024.0))


def check_targets(rows: List[dict]) -> List[dict]:
    """The targets judged on the median of the per-round ratios."""
    found = {(row["proxy"], row["scenario"]): row for row in rows}
    checks = []
    for proxy, scenario, baseline, bound in TARGETS:
        mine = found.get((proxy, scenario))
        if not mine or mine.get("rps_ratio") is None:
            continue
        ratio = mine["rps_ratio"]
        checks.append({"proxy": proxy, "scenario": scenario, "baseline": baseline,
                       "ratio": ratio, "bound": bound, "met": ratio >= bound})
        print("target: %s %s >= %.2f × %s: %.2f %s" % (proxy, scenario, bound, baseline, ratio,
                                                      "met" if ratio >= bound else "MISSED"))
    return checks


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated proxies")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; in each, every proxy runs each scenario in turn")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    args.names = [n for n in args.only.split(",") if n]
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error("unknown proxies %s (known: %s)" % (", ".join(unknown), ", ".join(NAMES)))
    return args


def run_all(args, procs: run.Processes, report: dict) -> None:
    make_certificates(procs.work)
    upstream, kind = run.start_backend(procs, "nginx")
    report["backend"] = kind
    running = []
    for name in args.names:
        print("%s: starting" % name)
        try:
            running.append(start_proxy(name, procs, upstream))
        except (LookupError, RuntimeError) as e:  # not installed, did not start, a tool failed
            print("  skipped: %s" % e)
            report["skipped"][name] = str(e)
    scenarios = ("handshake-rsa", "handshake-ecdsa", "https-keepalive", "h2")
    for round_ in range(1, args.rounds + 1):
        for scenario in scenarios:
            for proxy in running:
                try:
                    row = measure_one(proxy, scenario, args.duration, round_)
                except RuntimeError as e:  # a tool failed
                    print("  %s %s failed: %s" % (proxy.name, scenario, e))
                    continue
                if row is not None:
                    report["rows"].append(row)
    for proxy in running:
        rss = run.peak_rss_kib(proxy.proc.pid)
        for row in report["rows"]:
            if row["proxy"] == proxy.name:
                row["peak_rss_kib"] = rss
        procs.stop(proxy.proc)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    report = {"rows": [], "skipped": {}, "duration": args.duration, "rounds": args.rounds}
    started = time.monotonic()

    def body(procs):
        run_all(args, procs, report)
        add_ratios(report["rows"])
        report["summary"] = summarize(report["rows"])
        print_table(report["summary"])
        report["targets"] = check_targets(report["summary"])
        run.write_json(report, args.json)
        print("total %.0f s" % (time.monotonic() - started))

    return run.guarded("revproxy-tls-bench-", body)


if __name__ == "__main__":
    sys.exit(main())

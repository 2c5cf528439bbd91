"""Slow-client benchmark: does revproxy, at its shipped defaults, keep serving normal clients
while 1,000 slowloris or slow-read connections hold on?

Run with the venv's python from the repo root (see bench/README.md):

    .venv/bin/python bench/slowclients.py [--attack slowloris,slowread] [--duration 30]

For each attack: a fixed backend (nginx, else a Twisted static site; CPU 0), revproxy on CPU 1
(CPython, the shipped defaults with the access log off), ``slowhttptest`` (CPU 0) opening
``--connections`` slow connections from 127.0.0.1, and a normal client (a thread here) opening
a NEW connection every 0.5 s from 127.0.0.2 for ``/1k.bin``. The normal client comes from
another address, as a real visitor would: the attacker's own address meets
``max_connections_per_ip`` (512) by design. Reported: the normal client's success rate and
p50/p95 latency, slowhttptest's last connection counts, and what the proxy's log says it cut
off (slow readers, 408s, refusals).

Installs nothing: ``slowhttptest`` is Debian's package (``apt-get install -y slowhttptest``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402

NORMAL_SOURCE = "127.0.0.2"
NORMAL_INTERVAL = 0.5
NORMAL_TIMEOUT = 5.0
TARGETS = {"served": 0.99, "p95_ms": 50.0}

# slowhttptest arguments per attack (the target URL and the counts are added)
ATTACKS = {
    # a header line every 5 s, never finishing the head
    "slowloris": ["-H", "-i", "5", "-x", "24"],
    # PIPELINE pipelined 100 KiB responses read 32 bytes every 5 s through a 512-1024 byte
    # window (-k PIPELINE is added)
    "slowread": ["-X", "-n", "5", "-z", "32", "-w", "512", "-y", "1024"],
}
PATHS = {"slowloris": "/1k.bin", "slowread": "/100k.bin"}

# what revproxy's log says when it cuts a slow client off (counted per attack)
CUT_PATTERNS = {
    "slow readers aborted": re.compile(r"client too slow"),
    "408 (head or body too slow)": re.compile(r" 408[: ]"),
    "refused (per-address limit)": re.compile(r"refused: too many connections from this address"),
    "refused (total limit)": re.compile(r"refused: connection ceiling"),
}


def raise_fd_limit() -> None:
    """slowhttptest (our child) needs more than 1024 descriptors for 1,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(values: List[float], fraction: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class NormalClient(threading.Thread):
    """Every 0.5 s: a new connection from 127.0.0.2, GET /1k.bin, latency recorded."""

    def __init__(self, port: int, stop: threading.Event):
        threading.Thread.__init__(self, daemon=True)
        self.port = port
        self.stop = stop
        self.latencies: List[float] = []
        self.failures: List[str] = []
        self.slowest: List[tuple] = []  # (total ms, connect ms, seconds into the run)
        self.began = time.monotonic()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            self.one()
            next_at += NORMAL_INTERVAL
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def one(self) -> None:
        began = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=NORMAL_TIMEOUT,
                                          source_address=(NORMAL_SOURCE, 0))
        try:
            conn.connect()
            connected = time.monotonic()
            conn.request("GET", "/1k.bin")
            response = conn.getresponse()
            body = response.read()
            if response.status == 200 and len(body) == 1024:
                now = time.monotonic()
                self.latencies.append(now - began)
                self.slowest.append((round((now - began) * 1000, 1),
                                     round((connected - began) * 1000, 1),
                                     round(began - self.began, 1)))
                self.slowest = sorted(self.slowest, reverse=True)[:3]
            else:
                self.failures.append("status %d, %d bytes" % (response.status, len(body)))
        except (OSError, http.client.HTTPException) as e:
            self.failures.append("%s: %s" % (type(e).__name__, e))
        finally:
            conn.close()


def revproxy_argv(work: str, port: int, upstream: int, limits: List[str]) -> List[str]:
    """``twistd -n revproxy`` of the interpreter running this script (run it with a venv's
    python: that venv's twistd), with the shipped defaults and the access log off, plus
    ``limits`` (``key = value`` lines for ``[limits]``, for experiments only)."""
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    if not os.access(twistd, os.X_OK):
        raise RuntimeError("no twistd next to %s: run this with a venv's python" % sys.executable)
    config = os.path.join(work, "revproxy.toml")
    with open(config, "w") as f:
        f.write(proxies.REVPROXY_CONF.format(upstream=upstream))
        if limits:
            f.write("\n[limits]\n" + "\n".join(limits) + "\n")
    return [twistd, "-n", "--pidfile=", "revproxy", "--config", config,
            "--listen", "tcp:%d:interface=127.0.0.1" % port]


def slowhttptest_counts(text: str) -> Dict[str, int]:
    """The last status block of slowhttptest's output: connected, closed, error, pending."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # its colours
    counts = {}
    for key in ("pending", "connected", "error", "closed"):
        found = re.findall(r"%s:\s+(\d+)" % key, text)
        if found:
            counts[key] = int(found[-1])
    return counts


def log_counts(text: str) -> Dict[str, int]:
    return {label: len(pattern.findall(text)) for label, pattern in CUT_PATTERNS.items()}


def run_attack(attack: str, args, procs: run.Processes, upstream: int) -> dict:
    port = run.free_port()
    label = "revproxy-" + attack
    proxy = procs.start(label, revproxy_argv(procs.work, port, upstream, args.limits), cpu=1,
                        env=proxies.revproxy_env())
    problem = run.wait_ready(proxy, port)
    if problem:
        raise RuntimeError("revproxy %s\n%s" % (problem, procs.log_tail(label)))
    url = "http://127.0.0.1:%d%s" % (port, PATHS[attack])
    argv = (["slowhttptest"] + ATTACKS[attack]
            + (["-k", str(args.pipeline)] if attack == "slowread" else [])
            + ["-c", str(args.connections), "-r", str(args.rate), "-l", str(args.duration),
               "-p", "3", "-u", url])
    attacker = procs.start("slowhttptest-" + attack, argv, cpu=0)
    began = time.monotonic()
    time.sleep(args.connections / args.rate)  # the attack ramps up first
    stop = threading.Event()
    normal = NormalClient(port, stop)
    normal.start()
    # the whole duration, even when slowhttptest ends early (every connection it had is closed)
    time.sleep(max(0.0, began + args.duration - time.monotonic()))
    try:
        attacker.wait(30)
    except subprocess.TimeoutExpired:
        pass
    stop.set()
    normal.join(NORMAL_TIMEOUT + 1)
    procs.stop(attacker)
    procs.stop(proxy)
    with open(procs.log_path("slowhttptest-" + attack), "rb") as f:
        attack_text = f.read().decode("utf-8", "replace")
    with open(procs.log_path(label), "rb") as f:
        proxy_text = f.read().decode("utf-8", "replace")
    total = len(normal.latencies) + len(normal.failures)
    limits_line = re.search(r"limits: [^\n]*", proxy_text)
    return {
        "attack": attack,
        "normal_requests": total,
        "served": len(normal.latencies) / total if total else 0.0,
        "p50_ms": _ms(percentile(normal.latencies, 0.50)),
        "p95_ms": _ms(percentile(normal.latencies, 0.95)),
        "max_ms": _ms(max(normal.latencies) if normal.latencies else None),
        "failures": normal.failures[:5],
        "slowest": normal.slowest,
        "slowhttptest": slowhttptest_counts(attack_text),
        "proxy_cut": log_counts(proxy_text),
        "limits": limits_line.group(0) if limits_line else "",
    }


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000, 1)


def report(row: dict) -> bool:
    ok = row["served"] >= TARGETS["served"] and (row["p95_ms"] or 1e9) <= TARGETS["p95_ms"]
    print("%s: normal client %d requests, %.1f%% served, p50 %s ms, p95 %s ms, max %s ms -> %s"
          % (row["attack"], row["normal_requests"], 100 * row["served"], row["p50_ms"],
             row["p95_ms"], row["max_ms"], "target met" if ok else "TARGET MISSED"))
    print("  slowest (total ms, of which connect ms, at s): %s" % (row["slowest"],))
    print("  slowhttptest at the end: %s" % row["slowhttptest"])
    print("  cut off by the proxy: %s" % row["proxy_cut"])
    if row["failures"]:
        print("  first failures: %s" % row["failures"])
    if row["limits"]:
        print("  %s" % row["limits"])
    return ok


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", default="slowloris,slowread",
                        help="comma-separated: %s" % ", ".join(ATTACKS))
    parser.add_argument("--duration", type=int, default=30, help="seconds of attack (30)")
    parser.add_argument("--connections", type=int, default=1000, help="slow connections (1000)")
    parser.add_argument("--rate", type=int, default=200, help="slow connections opened per second")
    parser.add_argument("--pipeline", type=int, default=10,
                        help="slow read: responses of 100 KiB asked per connection (10)")
    parser.add_argument("--limits", action="append", default=[], metavar="'KEY = VALUE'",
                        help="a [limits] setting instead of the default (repeatable; the "
                             "targets are for the defaults)")
    parser.add_argument("--backend", default="auto", choices=("auto", "nginx", "twisted"))
    args = parser.parse_args(argv)
    args.attacks = [a for a in args.attack.split(",") if a]
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        parser.error("unknown attack %s (known: %s)" % (", ".join(unknown), ", ".join(ATTACKS)))
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if shutil.which("slowhttptest") is None:
        print("slowhttptest is not installed (apt-get install -y slowhttptest)", file=sys.stderr)
        return 2
    try:
        socket.create_connection  # noqa: B018
        with socket.socket() as s:
            s.bind((NORMAL_SOURCE, 0))
    except OSError:
        print("cannot bind %s (the normal client's address)" % NORMAL_SOURCE, file=sys.stderr)
        return 2
    raise_fd_limit()
    results = []

    def body(procs):
        upstream, kind = run.start_backend(procs, args.backend)
        print("backend: %s; CPU pinning: %s" % (kind, "on" if run.PINNING else "OFF"))
        for attack in args.attacks:
            print("%s: %d connections for %d s ..." % (attack, args.connections, args.duration))
            results.append(run_attack(attack, args, procs, upstream))
            report(results[-1])

    status = run.guarded("revproxy-slow-", body)
    ok = all(row["served"] >= TARGETS["served"] and (row["p95_ms"] or 1e9) <= TARGETS["p95_ms"]
             for row in results)
    return status or (0 if ok and results else 1)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark revproxy against Twisted's ReverseProxyResource, nginx and HAProxy, with wrk.

Run with the venv's python from the repo root (see bench/README.md):

    .venv/bin/python bench/run.py [--duration 10] [--only nginx,haproxy] [--json out.json]

One fixed backend (nginx, else a Twisted static site) and wrk share CPU 0; each proxy runs alone
on CPU 1. Every address is 127.0.0.1; every process started is killed at the end, even on error
or Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)

SCENARIOS = proxies.SCENARIOS  # (name, path, wrk connections)
WARMUP_SECONDS = 2
READY_TIMEOUT = 30.0  # PyPy plus Twisted's imports take a few seconds
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
# Targets from bench/README.md: (proxy, scenario, metric, baseline, bound)
TARGETS = (
    ("revproxy-cpython", "1k-c50", "rps", "nginx", 0.2),
    ("revproxy-pypy", "1k-c50", "rps", "nginx", 0.35),
    ("revproxy-cpython", "1k-c50", "rps", "twisted-rpr", 4.0),
    ("revproxy-pypy", "1k-c50", "rps", "twisted-rpr", 4.0),
    ("revproxy-cpython", "1k-c50", "p99_ms", "nginx", 3.0),
    ("revproxy-cpython", "100k-c50", "p99_ms", "nginx", 3.0),
    ("revproxy-pypy", "1k-c50", "p99_ms", "nginx", 3.0),
    ("revproxy-pypy", "100k-c50", "p99_ms", "nginx", 3.0),
)


def can_pin() -> bool:
    """True when taskset exists and CPUs 0 and 1 are both ours."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return False
    return shutil.which("taskset") is not None and {0, 1} <= cpus


PINNING = can_pin()


def pinned(cpu: int, argv: List[str]) -> List[str]:
    """``argv`` run on CPU ``cpu`` (unchanged when pinning is not possible)."""
    return ["taskset", "-c", str(cpu)] + argv if PINNING else argv


def free_port() -> int:
    """A loopback port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """The processes this run started; each leads its own session, so its children go with it."""

    def __init__(self, work: str) -> None:
        self.work = work
        self.running: List[subprocess.Popen] = []

    def start(self, label: str, argv: List[str], cpu: int,
              env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Start ``argv`` on ``cpu``, ``env`` added to ours; output to ``work``/``label``.log."""
        with open(self.log_path(label), "wb") as log:
            proc = subprocess.Popen(pinned(cpu, argv), cwd=self.work, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env=dict(os.environ, **env) if env else None)
        self.running.append(proc)
        return proc

    def log_path(self, label: str) -> str:
        return os.path.join(self.work, label + ".log")

    def log_tail(self, label: str, lines: int = 15) -> str:
        try:
            with open(self.log_path(label), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the process group, SIGKILL what is left after 5 s."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break  # the whole group is gone
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc)


def fetch(port: int, path: str) -> Tuple[int, int]:
    """GET ``path`` from 127.0.0.1:``port``; returns (status, body length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, len(response.read())
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen, port: int) -> Optional[str]:
    """Wait until both files come back whole through ``port``; None, or why not."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited with status %s" % proc.returncode
        try:
            got = [fetch(port, "/" + name) for name in proxies.FILES]
            want = [(200, size) for size in proxies.FILES.values()]
            if got == want:
                return None
            last = "answered %s, expected %s" % (got, want)
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.2)
    return "not ready after %.0f s (%s)" % (READY_TIMEOUT, last)


def parse_wrk(text: str) -> Dict[str, float]:
    """req/s, p50/p99 (ms), request and error counts from ``wrk --latency`` output."""
    def number(pattern: str) -> float:
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    result = {"rps": number(r"^Requests/sec:\s+([\d.]+)"),
              "requests": number(r"^\s*(\d+) requests in ")}
    for pct in ("50", "99"):
        match = re.search(r"^\s*%s(?:\.0+)?%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
        if not match:
            raise RuntimeError("no %s%% latency in wrk output: %s" % (pct, text[-300:]))
        result["p%s_ms" % pct] = float(match.group(1)) * TIME_UNITS_MS[match.group(2)]
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", text)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    result["errors"] = errors + number(r"Non-2xx or 3xx responses: (\d+)")
    return result


def run_wrk(port: int, path: str, connections: int, seconds: int) -> Dict[str, float]:
    """Run wrk on CPU 0 against 127.0.0.1:``port``/``path``; parsed results."""
    argv = pinned(0, ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s",
                      "--latency", "http://127.0.0.1:%d%s" % (port, path)])
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError("wrk failed (%s): %s" % (done.returncode, text.strip()[-500:]))
    return parse_wrk(text)


def backend_accepts(upstream: int) -> Optional[int]:
    """Connections the nginx backend on ``upstream`` has accepted so far, this request's
    included (its stub_status page); None when the backend has no such page."""
    conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=2)
    try:
        conn.request("GET", proxies.BACKEND_STATUS)
        response = conn.getresponse()
        text = response.read().decode("ascii", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    match = re.search(r"accepts handled requests\s+(\d+)", text)
    return int(match.group(1)) if response.status == 200 and match else None


def measure(port: int, path: str, connections: int, seconds: int, upstream: int,
            leader: int) -> dict:
    """``run_wrk`` plus what the proxy (session ``leader``) did meanwhile:

    - ``backend_conns``: the connections it opened to the backend (None when the backend
      cannot tell). Near ``connections`` means pooled upstream connections; near the request
      count means the proxy reconnects (churn);
    - ``cpu_us_per_req``: its CPU time (user + system, all its processes) per request, and
      ``cpu_busy``: that CPU time over the run's duration (1.0: its core was saturated).
      Other load on the machine slows everything down but moves these much less than req/s.
    """
    before, cpu_before = backend_accepts(upstream), cpu_seconds(leader)
    started = time.monotonic()
    row = run_wrk(port, path, connections, seconds)
    cpu = cpu_seconds(leader) - cpu_before
    elapsed = time.monotonic() - started
    after = backend_accepts(upstream)
    # the second status request is one accepted connection of its own
    row["backend_conns"] = None if before is None or after is None else after - before - 1
    row["cpu_us_per_req"] = cpu * 1e6 / row["requests"] if row["requests"] else None
    row["cpu_busy"] = cpu / elapsed
    return row


def session_processes(leader: int):
    """(pid, the fields of /proc/PID/stat after "comm)") of each process in ``leader``'s
    session; processes that vanish meanwhile are left out."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process went away meanwhile
        if len(fields) > 12 and fields[3] == str(leader):  # state ppid pgrp session ...
            yield entry, fields


def cpu_seconds(leader: int) -> float:
    """User + system CPU seconds used so far by every process in ``leader``'s session."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[11]) + int(fields[12])  # utime, stime
               for _, fields in session_processes(leader)) / float(ticks)


def peak_rss_kib(leader: int) -> int:
    """Sum of VmHWM (peak resident set, KiB) over every process in ``leader``'s session."""
    total = 0
    for entry, _ in session_processes(leader):
        try:
            with open("/proc/%s/status" % entry) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process went away meanwhile
    return total


def start_backend(procs: Processes, backend: str) -> Tuple[int, str]:
    """Start the fixed backend on CPU 0; returns (port, kind). Raises if it does not come up."""
    docroot = proxies.write_docroot(procs.work)
    port = free_port()
    launch = proxies.backend_launch(procs.work, port, docroot, backend)
    if launch.skip:
        raise RuntimeError("backend: " + launch.skip)
    kind = "nginx" if "nginx" in os.path.basename(launch.argv[0]) else "twisted-static"
    proc = procs.start("backend", launch.argv, cpu=0)
    problem = wait_ready(proc, port)
    if problem:
        raise RuntimeError("backend (%s) %s\n%s" % (kind, problem, procs.log_tail("backend")))
    return port, kind


def bench_proxy(name: str, procs: Processes, upstream: int, args) -> List[dict]:
    """Start proxy ``name`` on CPU 1, warm it up, run every scenario, stop it; result rows.

    Raises LookupError(reason) when the proxy is skipped (not installed, did not start).
    """
    port = free_port()
    launch = proxies.proxy_launch(name, procs.work, port, upstream, args.revproxy_args)
    if launch.skip:
        raise LookupError(launch.skip)
    proc = procs.start(name, launch.argv, cpu=1, env=launch.env)
    try:
        problem = wait_ready(proc, port)
        if problem:
            raise LookupError("did not start: %s\n%s" % (problem, procs.log_tail(name)))
        run_wrk(port, "/1k.bin", proxies.WARMUP_CONNECTIONS, WARMUP_SECONDS)
        rows = []
        for scenario, path, connections in SCENARIOS:
            row = measure(port, path, connections, args.duration, upstream, proc.pid)
            row.update(proxy=name, scenario=scenario)
            rows.append(row)
            print_progress(row)
            if proc.poll() is not None:
                print("  note: %s exited (%s) during %s" % (name, proc.returncode, scenario))
                break
        rss = peak_rss_kib(proc.pid)
        for row in rows:
            row["peak_rss_kib"] = rss
        return rows
    finally:
        procs.stop(proc)


def print_progress(row: dict) -> None:
    print("  %-9s %9.0f req/s  p99 %8.2f ms  %s CPU µs/req (%s busy)  backend connections %s"
          % (row["scenario"], row["rps"], row["p99_ms"], _us(row.get("cpu_us_per_req")),
             _busy(row.get("cpu_busy")), _count(row.get("backend_conns"))))


def _count(value: Optional[int]) -> str:
    return "-" if value is None else "%d" % value


def _us(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f" % value


def _busy(value: Optional[float]) -> str:
    return "-" if value is None else "%.0f%%" % (100 * value)


def add_ratios(rows: List[dict]) -> None:
    """Set rps_ratio and p99_ratio of each row against nginx's row for the same scenario."""
    nginx = {row["scenario"]: row for row in rows if row["proxy"] == "nginx"}
    for row in rows:
        base = nginx.get(row["scenario"])
        row["rps_ratio"] = row["rps"] / base["rps"] if base and base["rps"] else None
        row["p99_ratio"] = row["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else None
        mine, theirs = row.get("cpu_us_per_req"), base and base.get("cpu_us_per_req")
        row["cpu_ratio"] = mine / theirs if mine and theirs else None


def print_table(rows: List[dict]) -> None:
    header = ("proxy", "scenario", "req/s", "p50 ms", "p99 ms", "errors", "bk conns",
              "µs/req", "busy", "peak RSS", "req/s÷nginx", "p99÷nginx", "cpu÷nginx")
    fmt = "%-17s %-9s %9s %8s %8s %7s %8s %7s %5s %9s %11s %10s %10s"
    print(fmt % header)
    for row in rows:
        print(fmt % (row["proxy"], row["scenario"], "%.0f" % row["rps"], "%.2f" % row["p50_ms"],
                     "%.2f" % row["p99_ms"], "%d" % row["errors"],
                     _count(row.get("backend_conns")), _us(row.get("cpu_us_per_req")),
                     _busy(row.get("cpu_busy")), "%.1f MiB" % (row["peak_rss_kib"] / 1024.0),
                     _ratio(row["rps_ratio"]), _ratio(row["p99_ratio"]),
                     _ratio(row.get("cpu_ratio"))))


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else "%.2fx" % value


def check_targets(rows: List[dict]) -> List[dict]:
    """Each README target whose two sides both ran: the measured ratio and whether it holds."""
    by_key = {(row["proxy"], row["scenario"]): row for row in rows}
    checks = []
    for proxy, scenario, metric, baseline, bound in TARGETS:
        mine, base = by_key.get((proxy, scenario)), by_key.get((baseline, scenario))
        if not mine or not base or not base[metric]:
            continue
        ratio = mine[metric] / base[metric]
        holds = ratio >= bound if metric == "rps" else ratio <= bound
        relation = ">=" if metric == "rps" else "<="
        checks.append({"target": "%s %s %s %s %.2fx %s" % (proxy, scenario, metric, relation,
                                                             bound, baseline),
                       "ratio": ratio, "ok": holds})
    return checks


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--only", default="", help="comma-separated subset of: "
                        + ", ".join(proxies.PROXY_NAMES) + " ('revproxy' = both revproxies)")
    parser.add_argument("--backend", choices=("auto", "nginx", "twisted"), default="auto",
                        help="the fixed backend: nginx if installed (auto), or force one")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    parser.add_argument("--revproxy-args", default="", type=shlex.split,
                        help="extra arguments after 'twistd -n revproxy --listen .. --upstream ..'")
    args = parser.parse_args(argv)
    args.names = select(parser, args.only)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second")
    return args


def select(parser: argparse.ArgumentParser, only: str) -> List[str]:
    if not only:
        return list(proxies.PROXY_NAMES)
    wanted = set()
    for name in filter(None, (n.strip() for n in only.split(","))):
        if name == "revproxy":
            wanted.update(("revproxy-cpython", "revproxy-pypy"))
        elif name in proxies.PROXY_NAMES:
            wanted.add(name)
        else:
            parser.error("unknown proxy %r; choose from %s" % (name, ", ".join(proxies.PROXY_NAMES)))
    return [name for name in proxies.PROXY_NAMES if name in wanted]


def run_all(args, procs: Processes, report: dict) -> None:
    """Start the backend, then bench each selected proxy in turn; fills ``report``."""
    upstream, report["backend"] = start_backend(procs, args.backend)
    print("backend: %s on 127.0.0.1:%d" % (report["backend"], upstream))
    for name in args.names:
        print("%s:" % name)
        try:
            report["results"].extend(bench_proxy(name, procs, upstream, args))
        except (LookupError, RuntimeError) as e:  # not installed, did not start, wrk failed
            report["skipped"][name] = str(e)
            print("  note: skipped: %s" % e)


def interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def guarded(prefix: str, body) -> int:
    """Run ``body(procs)`` with a fresh work directory and process set; Ctrl-C / SIGTERM /
    SIGHUP interrupt it; every process is stopped and the directory removed whatever happens.
    Returns 0, 130 (interrupted) or 1 (an error, printed)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    work = tempfile.mkdtemp(prefix=prefix)
    procs = Processes(work)
    status = 0
    try:
        body(procs)
    except KeyboardInterrupt:
        print("interrupted; stopping everything")
        status = 130
    except Exception as e:  # report what ran so far, then fail
        print("error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        status = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return status


def write_json(report: dict, path: Optional[str]) -> None:
    """Save ``report`` to ``path`` (when given) and say so."""
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
        print("results written to %s" % path)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up at once through a pipe
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    per_proxy = WARMUP_SECONDS + len(SCENARIOS) * args.duration
    print("proxies: %s; about %d s each plus start-up; CPU pinning: %s" % (
        ", ".join(args.names), per_proxy, "on" if PINNING else "OFF (needs taskset and 2 CPUs)"))
    report = {"duration": args.duration, "pinning": PINNING, "backend": None,
              "results": [], "skipped": {}, "targets": []}
    status = guarded("revproxy-bench-", lambda procs: run_all(args, procs, report))
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
        if not any(row["proxy"] == "nginx" for row in rows):
            print("(ratios need nginx in the same run)")
    for name, why in report["skipped"].items():
        print("skipped %s: %s" % (name, why.splitlines()[0]))
    for check in report["targets"]:
        print("target %-55s %6.2fx  %s" % (check["target"], check["ratio"],
                                          "ok" if check["ok"] else "MISSED"))
    print("total run time: %.1f s" % elapsed)
    write_json(report, args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Figures for revproxy's load-balancing policies: a slow member, and a member killed and back.

Run with the venv's python from the repo root (see bench/README.md):

    .venv/bin/python bench/balancing.py [--duration 10] [--json out.json] [--pypy]

Each pool member is a bench/balance_backend.py process answering after a fixed delay; the
members and wrk share CPU 0, revproxy runs alone on CPU 1. Every address is 127.0.0.1; every
process started is killed at the end, even on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402  (bench/ is not a package)
import run as common  # noqa: E402  (free ports, pinning, process clean-up, wrk parsing)

FAST_MS, SLOW_MS = 2.0, 20.0
POLICIES = ("round-robin", "least-connections", "peak-ewma")
CONNECTIONS = 30
WARMUP_SECONDS = 2
SLOW_START_SECONDS = 10
SAMPLE_EVERY = 0.25  # /status polls; the table shows one row a second plus state changes
BACKEND = os.path.join(proxies.BENCH, "balance_backend.py")
SCENARIO_NAMES = ("slow", "kill")

CONFIG = """[server]
listen = ["tcp:{port}:interface=127.0.0.1:backlog=511"]
[logging]
access_log = ""
[pools.main]
members = [{members}]
balance = "{policy}"
{extra}
[admin]
listen = ["tcp:{admin}:interface=127.0.0.1"]
"""
# The kill scenario: ejected after 3 failures, back through slow start. The first ejection
# lasts N/6 s so that, doubled once while the member is dead, the trial that brings it back
# falls at about 5N/6 s, after its restart at 2N/3 s, within any --duration.
KILL_EXTRA = """slow_start = "{slow_start}s"
[pools.main.outlier]
consecutive_failures = 3
base_ejection = "{ejection}ms"
"""
HEALTH = """[pools.main.health]
path = "/healthz"
interval = "1s"
timeout = "500ms"
"""


def free_ports(count: int, taken: Tuple[int, ...] = ()) -> List[int]:
    """``count`` distinct free loopback ports, none of them in ``taken``."""
    ports: List[int] = []
    while len(ports) < count:
        port = common.free_port()
        if port not in ports and port not in taken:
            ports.append(port)
    return ports


def get_json(port: int, path: str) -> Optional[dict]:
    """GET ``path`` from 127.0.0.1:``port`` as JSON; None when it does not answer 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def wait_until(proc: subprocess.Popen, port: int, path: str, size: int, what: str) -> None:
    """Wait until GET ``path`` answers 200 with ``size`` bytes; RuntimeError if it never does."""
    deadline = time.monotonic() + common.READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %s" % (what, proc.returncode))
        try:
            got = common.fetch(port, path)
            if got == (200, size):
                return
            last = "answered %s" % (got,)
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.1)
    raise RuntimeError("%s not ready after %.0f s (%s)" % (what, common.READY_TIMEOUT, last))


class Members:
    """The pool's member processes, each on its own loopback port, on CPU 0."""

    def __init__(self, procs: common.Processes, delays_ms: List[float]) -> None:
        self.procs = procs
        self.delays = list(delays_ms)
        self.ports = free_ports(len(self.delays))
        self.running: List[Optional[subprocess.Popen]] = [None] * len(self.delays)
        self.starts = 0  # log files are numbered so a restart keeps the first run's log

    def urls(self) -> str:
        return ", ".join('"http://127.0.0.1:%d"' % port for port in self.ports)

    def label(self, index: int) -> str:
        return "m%d (%g ms)" % (index + 1, self.delays[index])

    def start(self, index: int) -> None:
        """Start member ``index`` on its port; does not wait for it to listen."""
        self.starts += 1
        argv = [proxies.twisted_python(), BACKEND, "--port", str(self.ports[index]),
                "--delay-ms", "%g" % self.delays[index]]
        self.running[index] = self.procs.start("member-%d.%d" % (index + 1, self.starts),
                                               argv, cpu=0)

    def start_all(self) -> None:
        for index in range(len(self.delays)):
            self.start(index)
        for index in range(len(self.delays)):
            wait_until(self.running[index], self.ports[index], "/healthz", 3, self.label(index))

    def kill(self, index: int) -> None:
        """SIGKILL member ``index`` (no goodbye: its connections just reset)."""
        proc = self.running[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs.running.remove(proc)
        self.running[index] = None

    def counts(self) -> List[Optional[int]]:
        """Requests each member has served (None: it did not answer)."""
        answers = [get_json(port, "/count") for port in self.ports]
        return [answer["served"] if answer else None for answer in answers]


def shares(before: List[Optional[int]], after: List[Optional[int]]) -> List[Optional[float]]:
    """Each member's share of the requests served between two ``counts``."""
    deltas = [b - a if a is not None and b is not None else None for a, b in zip(before, after)]
    total = sum(d for d in deltas if d is not None)
    return [d / total if d is not None and total else None for d in deltas]


def start_proxy(procs: common.Processes, args, members: Members, label: str, policy: str,
                extra: str = "") -> Tuple[subprocess.Popen, int, int]:
    """Start revproxy on CPU 1 in front of ``members``; (process, port, admin port) once ready."""
    port, admin = free_ports(2, tuple(members.ports))
    path = os.path.join(procs.work, label + ".toml")
    with open(path, "w") as f:
        f.write(CONFIG.format(port=port, admin=admin, members=members.urls(), policy=policy,
                              extra=extra))
    venv = ".venv-pypy" if args.pypy else ".venv"
    twistd = proxies.venv_bin(venv, "twistd")
    if twistd is None:
        raise RuntimeError("%s/ is missing (run scripts/setup-env)" % venv)
    proc = procs.start(label, [twistd, "-n", "--pidfile=", "revproxy", "--config", path], cpu=1,
                       env=proxies.revproxy_env())
    try:
        wait_until(proc, port, "/", 1024, "revproxy (%s)" % label)
    except RuntimeError as e:
        raise RuntimeError("%s\n%s" % (e, procs.log_tail(label)))
    return proc, port, admin


def start_wrk(port: int, seconds: int) -> subprocess.Popen:
    """wrk -t1 -c30 --latency on CPU 0 against 127.0.0.1:``port``/, in the background."""
    argv = common.pinned(0, ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d%ds" % seconds,
                             "--timeout", "10s", "--latency", "http://127.0.0.1:%d/" % port])
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def wrk_results(wrk: subprocess.Popen, seconds: int) -> Dict[str, float]:
    """Wait for ``wrk`` (killed if still running 60 s after its end), parse it; p90 too."""
    try:
        output = wrk.communicate(timeout=seconds + 60)[0]
    except subprocess.TimeoutExpired:
        wrk.kill()
        output = wrk.communicate()[0]
    text = output.decode("utf-8", "replace")
    if "Requests/sec" not in text:
        raise RuntimeError("wrk failed (%s): %s" % (wrk.returncode, text.strip()[-500:]))
    result = common.parse_wrk(text)
    match = re.search(r"^\s*90(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if not match:
        raise RuntimeError("no 90%% latency in wrk output: %s" % text[-300:])
    result["p90_ms"] = float(match.group(1)) * common.TIME_UNITS_MS[match.group(2)]
    return result


# -- scenario 1: a slow member --------------------------------------------------------------
def slow_member(procs: common.Processes, args, report: dict) -> None:
    """Three members at 2 ms and one at 20 ms, under each policy in turn."""
    members = Members(procs, [FAST_MS] * 3 + [SLOW_MS])
    members.start_all()
    report["slow_member"] = {"members": [members.label(i) for i in range(4)], "rows": []}
    for policy in POLICIES:
        proc, port, admin = start_proxy(procs, args, members, "slow-" + policy, policy)
        try:
            common.run_wrk(port, "/", CONNECTIONS, WARMUP_SECONDS)
            before = members.counts()
            row = wrk_results(start_wrk(port, args.duration), args.duration)
            row.update(policy=policy, shares=shares(before, members.counts()),
                       status=get_json(admin, "/status"))
        finally:
            procs.stop(proc)
        report["slow_member"]["rows"].append(row)
        print("  %-17s %7.0f req/s  p99 %7.2f ms  slow member's share %s" % (
            policy, row["rps"], row["p99_ms"], _percent(row["shares"][-1])))
    base = report["slow_member"]["rows"][0]
    for row in report["slow_member"]["rows"]:
        for pct in ("p90", "p99"):
            ratio = row[pct + "_ms"] / base[pct + "_ms"] if base[pct + "_ms"] else None
            row[pct + "_vs_rr"] = ratio


def print_slow_member(result: dict) -> None:
    print("\nslow member: %s; wrk -t1 -c%d" % (", ".join(result["members"]), CONNECTIONS))
    fmt = "%-17s %6s %6s %6s %6s %6s %7s %7s" + " %10s" * len(result["members"])
    print(fmt % (("policy", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "p90÷rr",
                  "p99÷rr") + tuple(result["members"])))
    for row in result["rows"]:
        print(fmt % ((row["policy"], "%.0f" % row["rps"], "%.2f" % row["p50_ms"],
                      "%.2f" % row["p90_ms"], "%.2f" % row["p99_ms"], "%d" % row["errors"],
                      _ratio(row.get("p90_vs_rr")), _ratio(row.get("p99_vs_rr")))
                     + tuple(_percent(share) for share in row["shares"])))


# -- scenario 2: a member killed, then back ------------------------------------------------
def kill_and_return(procs: common.Processes, args, report: dict) -> None:
    """For each policy of --kill-policy: fresh members and proxy, then a ``KillRun``."""
    report["kill_and_return"] = []
    for policy in args.kill_policies:
        result = {"policy": policy, "health_checks": args.health}
        report["kill_and_return"].append(result)
        try:
            kill_one(procs, args, policy, result)
        finally:
            procs.stop_all()
        last = result["samples"][-1]
        print("  %-17s %7.0f req/s, %d errors; m1 ends %s, weight %s, ramp share %s" % (
            policy, result["wrk"]["rps"], result["wrk"]["errors"], last["state"],
            last["weight"], _percent(result["ramp_shares"][0])))


def kill_one(procs: common.Processes, args, policy: str, result: dict) -> None:
    """Start three 2 ms members and revproxy with outlier detection and slow start; run."""
    members = Members(procs, [FAST_MS] * 3)
    members.start_all()
    extra = KILL_EXTRA.format(slow_start=SLOW_START_SECONDS,
                              ejection=max(1, round(args.duration * 1000 / 6)))
    extra += HEALTH if args.health else ""
    result.update(config=extra, members=[members.label(i) for i in range(3)])
    proc, port, admin = start_proxy(procs, args, members, "kill-" + policy, policy, extra)
    try:
        common.run_wrk(port, "/", CONNECTIONS, WARMUP_SECONDS)
        KillRun(members, port, admin).run(args.duration, result)
    finally:
        procs.stop(proc)


class KillRun:
    """wrk for N s, member 1 SIGKILLed at N/3 s and restarted at 2N/3 s, then SLOW_START s
    more of load (the ramp); /status and /count sampled every SAMPLE_EVERY s throughout."""

    def __init__(self, members: Members, port: int, admin: int) -> None:
        self.members, self.port, self.admin = members, port, admin
        self.name = "127.0.0.1:%d" % members.ports[0]
        self.samples: List[dict] = []
        self.events: Dict[str, float] = {}
        self.baseline: List[Optional[int]] = [None] * len(members.ports)  # at the restart
        self.start = time.monotonic()

    def run(self, duration: int, result: dict) -> None:
        self.start = time.monotonic()
        result["wrk"] = self.load("load", duration, lambda now: self.act(now, duration))
        self.events["load over"] = self.now()
        result["last_third_shares"] = shares(self.baseline, self.members.counts())
        before = self.members.counts()
        result["ramp_wrk"] = self.load("ramp", SLOW_START_SECONDS, lambda now: None)
        result.update(ramp_shares=shares(before, self.members.counts()), events=self.events,
                      samples=self.samples)

    def now(self) -> float:
        return time.monotonic() - self.start

    def load(self, phase: str, seconds: int, act) -> Dict[str, float]:
        """Run wrk for ``seconds``, calling ``act(now)`` and sampling until it ends."""
        wrk, began = start_wrk(self.port, seconds), self.now()
        try:
            while wrk.poll() is None:
                act(self.now())
                self.samples.append(self.sample(phase))
                if self.now() - began > seconds + 60:
                    raise RuntimeError("wrk did not stop after %d s" % (seconds + 60))
                time.sleep(SAMPLE_EVERY)
        finally:
            if wrk.poll() is None:
                wrk.kill()  # only on an error above: normally wrk has ended
        return wrk_results(wrk, seconds)

    def act(self, now: float, duration: int) -> None:
        if "kill" not in self.events and now >= duration / 3.0:
            self.members.kill(0)
            self.events["kill"] = now
        if "restart" not in self.events and now >= duration * 2 / 3.0:
            self.baseline = self.members.counts()
            self.baseline[0] = 0  # a new process counts from zero
            self.members.start(0)
            self.events["restart"] = now

    def sample(self, phase: str) -> dict:
        """Member 1 as /status shows it now, and every member's /count."""
        status = get_json(self.admin, "/status") or {}
        found = [m for m in status.get("pools", {}).get("main", {}).get("members", ())
                 if m.get("name") == self.name]
        member = found[0] if found else {}
        return {"t": round(self.now(), 2), "phase": phase, "counts": self.members.counts(),
                "state": member.get("state", "?"), "weight": member.get("weight"),
                "in_flight": member.get("in_flight"), "ewma_ms": member.get("ewma_ms")}


def print_kill_and_return(result: dict) -> None:
    events = result["events"]
    print("\nkill and return: %s, %s; %s; m1 SIGKILLed at %.1f s, restarted at %.1f s, "
          "load over at %.1f s, then %d s more load (ramp)" % (
              result["policy"], ", ".join(result["members"]),
              "health checks + outlier detection" if result["health_checks"] else
              "outlier detection only", events["kill"], events["restart"], events["load over"],
              SLOW_START_SECONDS))
    for label, wrk in (("load", result["wrk"]), ("ramp", result["ramp_wrk"])):
        print("%s: wrk -t1 -c%d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d of %d" % (
            label, CONNECTIONS, wrk["rps"], wrk["p50_ms"], wrk["p99_ms"], wrk["errors"],
            wrk["requests"]))
    for label, key in (("last third of load", "last_third_shares"), ("ramp", "ramp_shares")):
        print("shares, %s: %s" % (label, ", ".join(
            "%s %s" % (member, _percent(share))
            for member, share in zip(result["members"], result[key]))))
    fmt = "%6s %-5s %-9s %7s %9s %9s %9s"
    print(fmt % ("t s", "phase", "m1 state", "weight", "in flight", "ewma ms", "m1 share"))
    previous = None
    for row in timeline_rows(result["samples"]):
        print(fmt % ("%.1f" % row["t"], row["phase"], row["state"], _num(row["weight"], "%.3f"),
                     _num(row["in_flight"], "%d"), _num(row["ewma_ms"], "%.1f"),
                     _percent(interval_share(previous, row["counts"]))))
        previous = row["counts"]


def interval_share(before: Optional[List[Optional[int]]],
                   after: List[Optional[int]]) -> Optional[float]:
    """Member 1's share of the requests served between two samples' counts.

    A member that did not answer served nothing; a count that went down belongs to a
    restarted process, which counted from zero."""
    if before is None:
        return None
    deltas = []
    for old, new in zip(before, after):
        new = new or 0
        deltas.append(new - old if old is not None and new >= old else new)
    total = sum(deltas)
    return deltas[0] / total if total else None


def timeline_rows(samples: List[dict]) -> List[dict]:
    """The first sample of each second, plus every sample whose state differs from the last."""
    rows, second, state = [], -1, None
    for row in samples:
        if int(row["t"]) != second or row["state"] != state:
            rows.append(row)
        second, state = int(row["t"]), row["state"]
    return rows


# -- the run ---------------------------------------------------------------------------------
def _percent(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f%%" % (100.0 * value)


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else "%.2fx" % value


def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt % value


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run (10)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help="wrk connections (%d)" % CONNECTIONS)
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON here")
    parser.add_argument("--only", default="", help="one of: " + ", ".join(SCENARIO_NAMES))
    parser.add_argument("--pypy", action="store_true", help="run revproxy from .venv-pypy/")
    parser.add_argument("--kill-policy", default="peak-ewma,round-robin,least-connections",
                        help="comma-separated policies run in turn by the kill scenario "
                        "(peak-ewma,round-robin,least-connections)")
    parser.add_argument("--health", action="store_true",
                        help="kill scenario: add active health checks (1 s) to outlier detection")
    args = parser.parse_args(argv)
    globals()["CONNECTIONS"] = args.connections  # start_wrk reads the module setting
    if args.duration < 3:
        parser.error("--duration must be at least 3 seconds")
    args.kill_policies = [p.strip() for p in args.kill_policy.split(",") if p.strip()]
    if not args.kill_policies or set(args.kill_policies) - set(POLICIES):
        parser.error("--kill-policy takes policies among: " + ", ".join(POLICIES))
    if args.only and args.only not in SCENARIO_NAMES:
        parser.error("--only takes one of: " + ", ".join(SCENARIO_NAMES))
    return args


def run_scenarios(args, procs: common.Processes, report: dict) -> None:
    for name, scenario in (("slow", slow_member), ("kill", kill_and_return)):
        if args.only and args.only != name:
            continue
        print("%s:" % name)
        try:
            scenario(procs, args, report)
        except RuntimeError as e:  # a process did not start, wrk failed
            report["failed"][name] = str(e)
            print("  note: failed: %s" % e)
        finally:
            procs.stop_all()  # members and proxy of this scenario


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up at once through a pipe
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    print("revproxy on %s; %d s of load per run; CPU pinning: %s" % (
        "PyPy" if args.pypy else "CPython", args.duration,
        "on" if common.PINNING else "OFF (needs taskset and 2 CPUs)"))
    report = {"duration": args.duration, "pinning": common.PINNING, "pypy": args.pypy,
              "failed": {}}
    started = time.monotonic()
    status = common.guarded("revproxy-balancing-",
                            lambda procs: run_scenarios(args, procs, report))
    finish(report, args, time.monotonic() - started)
    return status or (1 if report["failed"] else 0)


def finish(report: dict, args, elapsed: float) -> None:
    """Print the tables and the run time; write the JSON file if asked."""
    report["total_seconds"] = round(elapsed, 1)
    if report.get("slow_member", {}).get("rows"):
        print_slow_member(report["slow_member"])
    for result in report.get("kill_and_return", ()):
        if "samples" in result:
            print_kill_and_return(result)
    for name, why in report["failed"].items():
        print("failed %s: %s" % (name, why.splitlines()[0]))
    print("total run time: %.1f s" % elapsed)
    common.write_json(report, args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Count the instructions the SecLang engine spends per request, under valgrind's callgrind:
deterministic where timings on a shared VM drift by tens of percent from minute to minute,
so it can tell apart two versions of the engine a few percent apart.

    .venv/bin/python bench/firewall_instructions.py [get post get-fresh post-fresh] [-n 100]
        [--crs DIR] [--tree DIR]

Each scenario is one of bench/firewall_engine.py's requests with the CRS loaded as
``[firewall] crs = DIR`` loads it. The figure is the difference between two runs under
callgrind (``--cache-sim=no``, ``PYTHONHASHSEED=0``): 200 warm-up requests then ``n``
more, and the warm-up alone, divided by ``n``. ``--tree`` measures another checkout (a
worktree of an earlier commit) with this venv. Needs valgrind (apt-get install valgrind);
a scenario takes a few minutes (the rule set is loaded under callgrind twice).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import proxies  # noqa: E402  (bench/ is not a package)
DEFAULT_CRS = os.path.join(os.path.dirname(REPO), "shared", "crs-v4.28.0")
WARMUP = 200

# run under callgrind: load the CRS, warm up, then run ``n`` requests of one scenario
CHILD = """import sys
sys.path[:0] = [{tree!r} + "/bench", {tree!r}]
import firewall_engine as fe
waf = fe.product_waf({crs!r})
fn = fe.SCENARIOS[{scenario!r}]
for _ in range({warmup}):
    fn(waf)
for _ in range({n}):
    fn(waf)
"""


def instructions(tree: str, crs: str, scenario: str, n: int) -> int:
    """Instructions callgrind counts for the whole child run (load, warm-up, ``n``)."""
    with tempfile.TemporaryDirectory(prefix="revproxy-callgrind-") as work:
        out = os.path.join(work, "callgrind.out")
        code = CHILD.format(tree=tree, crs=crs, scenario=scenario, warmup=WARMUP, n=n)
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=no",
                        "--callgrind-out-file=" + out, sys.executable, "-c", code],
                       env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=3600)
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals): (\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("callgrind wrote no total")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=["get", "post"],
                    help="of: get, post, get-fresh, post-fresh (get post)")
    ap.add_argument("-n", type=int, default=100, help="requests measured (100)")
    ap.add_argument("--crs", default=DEFAULT_CRS)
    ap.add_argument("--tree", default=REPO, help="the checkout to measure (this one)")
    args = ap.parse_args(argv)
    problem = proxies.missing("valgrind", args.crs)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    tree = os.path.abspath(args.tree)
    for scenario in args.scenarios:
        base = instructions(tree, args.crs, scenario, 0)
        total = instructions(tree, args.crs, scenario, args.n)
        print("%s %s: %d instructions per request" % (tree, scenario,
                                                      (total - base) // args.n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the SecLang engine in-process: CRS v4.28.0 at paranoia level 1, loaded with the
regression settings (tests/firewall/ftw.py), timed through ``transaction().phase1..5`` for a
benign GET (1 KiB response) and a 4 KiB url-encoded form POST (the requests of
bench/firewall.py), then the same two with query, cookie and field values that change on
every request ("fresh": what the records of cleanskip.py cannot cover). No proxy, no
sockets: this is the engine's own cost per request.

    .venv/bin/python bench/firewall_engine.py [-n 300] [--crs DIR] [--product] [--profile get|post]
    bench/firewall_engine.py --both          # CPython then PyPy (the main checkout's venvs)

Prints µs per request (CPU time, the best of 5 rounds after a warm-up) per scenario.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from revproxy.firewall.seclang.api import RequestView  # noqa: E402
from tests.firewall import ftw  # noqa: E402

HEADERS = [(b"host", b"bench.example"),
           (b"accept", b"text/html,application/xhtml+xml,*/*;q=0.8"),
           (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 "
                           b"Firefox/128")]
FORM = "&".join("field%d=%s" % (i, ("value-%d-" % i + "abcdefghij" * 6)[:70])
                for i in range(56))[:4096].encode()
RESPONSE_HEADERS = [(b"content-type", b"application/octet-stream"),
                    (b"content-length", b"1024")]
PAGE = [(b"content-type", b"text/html"), (b"content-length", b"29")]


def _run(waf, method, uri, headers, body, status, response_headers, response_body):
    """One transaction through phases 1-5, as the proxy runs them."""
    view = RequestView("127.0.0.1", 40000, "127.0.0.1", 80, method, uri, b"HTTP/1.1",
                       headers, b"bench")
    tx = waf.transaction(view)
    tx.phase1()
    tx.phase2(body)
    tx.phase3(status, response_headers)
    tx.phase4(response_body)
    tx.phase5()
    return tx


def _form_headers(form):
    return HEADERS + [(b"content-type", b"application/x-www-form-urlencoded"),
                      (b"content-length", b"%d" % len(form))]


def get_request(waf):
    return _run(waf, b"GET", b"/1k.bin", HEADERS, None, 200, RESPONSE_HEADERS, b"x" * 1024)


def post_request(waf):
    return _run(waf, b"POST", b"/form", _form_headers(FORM), FORM, 200, PAGE,
                b"<html><body>ok</body></html>\n")


_COUNTER = [0]


def get_fresh_request(waf):
    """The GET with a query and a session cookie that differ on every request (the
    values earlier requests showed clean, cleanskip.py, do not cover them)."""
    _COUNTER[0] += 1
    n = _COUNTER[0]
    return _run(waf, b"GET", b"/1k.bin?id=%d&ref=p%dq" % (n, n),
                HEADERS + [(b"cookie", b"session=%016x" % n)], None, 200, RESPONSE_HEADERS,
                b"x" * 1024)


def post_fresh_request(waf):
    """The form POST with every field's value different on every request."""
    _COUNTER[0] += 1
    n = _COUNTER[0]
    form = "&".join("field%d=%s" % (i, ("value-%d-%d-" % (i, n) + "abcdefghij" * 6)[:70])
                    for i in range(56))[:4096].encode()
    return _run(waf, b"POST", b"/form", _form_headers(form), form, 200, PAGE,
                b"<html><body>ok</body></html>\n")


def product_waf(crs: str):
    """The CRS at paranoia level 1 as ``[firewall] crs = DIR`` loads it."""
    from revproxy.config.firewall import parse_firewall_flag
    from revproxy.firewall.crs import find_crs
    from revproxy.firewall.seclang.engine import load_waf
    from revproxy.firewall.sources import rule_sources
    settings = parse_firewall_flag("crs:" + crs)
    return load_waf(rule_sources(settings, find_crs(crs), "<bench>"))


SCENARIOS = {"get": get_request, "post": post_request, "get-fresh": get_fresh_request,
             "post-fresh": post_fresh_request}


def measure(waf, fn, n: int) -> float:
    """µs of CPU per request: the best of 5 rounds of ``n`` requests (other work on the
    machine only ever adds time)."""
    rounds = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            fn(waf)
        rounds.append((time.process_time() - t0) / n * 1e6)
    return min(rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="requests per round")
    ap.add_argument("--crs", default=ftw.crs_dir())
    ap.add_argument("--profile", choices=sorted(SCENARIOS), help="cProfile one scenario")
    ap.add_argument("--product", action="store_true",
                    help="load the CRS as the proxy's [firewall] crs = DIR does (what "
                         "bench/firewall.py measures), not with the regression settings")
    ap.add_argument("--both", action="store_true", help="run on CPython and PyPy")
    args = ap.parse_args(argv)
    if args.both:
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--both"]
        for py in (".venv/bin/python", ".venv-pypy/bin/python"):
            exe = os.path.join("/work/main", py)
            subprocess.run([exe, os.path.abspath(__file__)] + rest, check=False)
        return 0
    if not args.crs:
        print("no CRS found (set REVPROXY_CRS_DIR)", file=sys.stderr)
        return 2
    t0 = time.time()
    waf = product_waf(args.crs) if args.product else ftw.load_crs(args.crs, paranoia=1)
    load = time.time() - t0
    for fn in SCENARIOS.values():  # results must stay benign
        ids = sorted(m.rule_id for m in fn(waf).matches)
        assert not ids, "benign request logged %s" % ids
    impl = sys.implementation.name
    if args.profile:
        import cProfile
        import pstats
        fn = SCENARIOS[args.profile]
        for _ in range(args.n):
            fn(waf)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            fn(waf)
        prof.disable()
        pstats.Stats(prof).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "25")))
        return 0
    warm = args.n * (10 if impl == "pypy" else 1)
    out = ["%s (load %.1fs)" % (impl, load)]
    for name, fn in SCENARIOS.items():
        for _ in range(warm):
            fn(waf)
        out.append("%s %.0f µs" % (name, measure(waf, fn, args.n)))
    print("  ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

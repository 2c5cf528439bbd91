"""Micro-benchmark of the SecLang operators the CRS spends most on, in-process:
@detectSQLi / @detectXSS (the pure-Python libinjection port, whatever binding is
installed) in µs per KiB, and the common transformation chain in µs per value.

    .venv/bin/python bench/firewall_ops.py [-n 20] [--both]

Inputs: a 4 KiB url-encoded form (as bench/firewall_engine.py posts) split into its
values, one 1 KiB English-ish text, the same text with a few quotes and parentheses
(benign, but the tokenizer's slow paths run), and 1 KiB of benign HTML markup. The memo
of short inputs is cleared before each pass, so the numbers are the port's own cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from revproxy.firewall.seclang import libinjection, transforms  # noqa: E402
from revproxy.firewall.seclang.libinjection import _sqli, _xss  # noqa: E402

FORM = "&".join("field%d=%s" % (i, ("value-%d-" % i + "abcdefghij" * 6)[:70])
                for i in range(56))[:4096].encode()
VALUES = [v.split(b"=", 1)[-1] for v in FORM.split(b"&")]
TEXT = (b"The quick brown fox jumps over the lazy dog near the river bank, 42 times. "
        * 14)[:1024]
QUOTED = (b"O'Reilly (ed.) said: \"it's 3.5% better\" - see p. 12; a/b & c. " * 17)[:1024]
MARKUP = (b'<p class="note">Hello <b>world</b>, see <a href="/docs?page=2&amp;x=1" '
          b'title="the docs">the docs</a> or <img src="/logo.png" alt="logo" width=32>.</p>'
          * 8)[:1024]
CHAIN = [transforms.TRANSFORMS[n] for n in ("urldecodeuni", "htmlentitydecode",
                                              "lowercase", "removewhitespace", "cmdline")]


def _clear_memos() -> None:
    for mod in (_sqli, _xss, libinjection):
        clear = getattr(mod, "clear_memo", None)
        if clear is not None:
            clear()


def per_kib(fn, inputs, n: int) -> float:
    """µs of CPU per KiB of input: median of 5 rounds of ``n`` passes over ``inputs``."""
    size = sum(len(i) for i in inputs) / 1024.0
    rounds = []
    for _ in range(5):
        _clear_memos()
        t0 = time.process_time()
        for _ in range(n):
            _clear_memos()
            for data in inputs:
                fn(data)
        rounds.append((time.process_time() - t0) / n / size * 1e6)
    rounds.sort()
    return rounds[2]


def chain(data: bytes) -> bytes:
    for fn in CHAIN:
        data = fn(data)
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--both", action="store_true", help="run on CPython and PyPy")
    args = ap.parse_args(argv)
    if args.both:
        for py in (".venv/bin/python", ".venv-pypy/bin/python"):
            subprocess.run([os.path.join("/work/main", py), os.path.abspath(__file__),
                            "-n", str(args.n)], check=False)
        return 0
    warm = 10 if sys.implementation.name == "pypy" else 1
    cases = [("form", VALUES), ("text", [TEXT]), ("quoted", [QUOTED]),
             ("markup", [MARKUP])]
    out = [sys.implementation.name]
    for op, fn in (("sqli", _sqli.is_sqli), ("xss", _xss.is_xss), ("chain", chain)):
        for name, inputs in cases:
            per_kib(fn, inputs, args.n * warm)
            out.append("%s/%s %.0f" % (op, name, per_kib(fn, inputs, args.n)))
    print("µs/KiB  " + "  ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A young generation sized for a proxy on PyPy, set before the process does any work.

PyPy's collector allocates new objects in a nursery and empties it with a minor collection
whenever it is full; each minor collection copies what is still alive, and a proxy always
has something alive: the requests in flight, their parsed heads, the firewall transactions
of 50 concurrent connections. PyPy sizes the nursery from the CPU's cache (1 MiB on the
2-core VMs here), so under load it collects hundreds of times a second. Measured on this
VM (``twistd -n revproxy`` on PyPy, wrk with 50 connections, a 1 KiB GET; collector time
from ``gc.get_stats().total_gc_time``, one run each):

============================  ==========  ==========  ======================
nursery                        CRS on      firewall    GC time, CRS on
                               req/s       off req/s   (share of 6 s of CPU)
============================  ==========  ==========  ======================
1 MiB (PyPy's choice here)     4 050       19 700      1.69 s (29 %)
32 MiB (``NURSERY``)           7 330                   0.50 s
64 MiB                         7 960       22 060      0.27 s (5 %)
128 MiB                        7 650                   0.18 s
256 MiB                        8 310                   0.06 s
============================  ==========  ==========  ======================

The p99 latency fell with it (CRS on 62 -> 26 ms, firewall off 26 -> 6 ms). The proxied
benchmark (bench/run.py, firewall off) at 1 MiB / 32 MiB / 64 MiB: 1 KiB c50 17,340 /
22,841 / 19,450 req/s (p99 32 / 4.9 / 4.6 ms), 100 KiB c50 3,672 / 8,855 / 8,615, and a
peak RSS of 193 / 381 / 471 MiB: memory is the price, so the default is 32 MiB, where the
throughput is already there. PyPy reads ``PYPY_GC_NURSERY`` only when it starts, so
``twistd revproxy`` started on PyPy without it runs itself again at once (``os.execve``:
same process id, same arguments, nothing listening yet) with ``PYPY_GC_NURSERY=32MB``. An operator's own ``PYPY_GC_NURSERY`` is
kept as it is (set it to choose another size: each process, workers included, allocates
its nursery once). Worker processes inherit the variable. Nothing happens on CPython, nor
when the program is not ``twistd`` (tests calling ``makeService``, ``python -c``).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

NURSERY = "32MB"
VARIABLE = "PYPY_GC_NURSERY"


def restart_plan(implementation: str, environ: Mapping[str, str], argv: Sequence[str],
                 executable: str) -> Optional[Tuple[str, List[str], dict]]:
    """``(executable, argv, environment)`` to run the process again with, or None."""
    if implementation != "pypy" or VARIABLE in environ or not argv or not executable:
        return None
    program = argv[0]
    if os.path.basename(program) == "twistd" and os.path.isfile(program):
        again = [executable, program] + list(argv[1:])
    elif program.replace(os.sep, "/").endswith("twisted/__main__.py"):
        again = [executable, "-m", "twisted"] + list(argv[1:])  # python -m twisted ...
    else:
        return None
    env = dict(environ)
    env[VARIABLE] = NURSERY
    return executable, again, env


def ensure(execve: Callable = os.execve) -> None:
    """Run the process again with the nursery set when ``restart_plan`` says so."""
    plan = restart_plan(sys.implementation.name, os.environ, sys.argv, sys.executable)
    if plan is None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or odd stream must not stop the start-up
            pass
    execve(*plan)


def nursery_note(implementation: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> str:
    """What the start-up log says of the nursery on PyPy ("" on CPython)."""
    if (implementation or sys.implementation.name) != "pypy":
        return ""
    env = os.environ if environ is None else environ
    return env.get(VARIABLE) or "PyPy's default (sized from the CPU cache)"

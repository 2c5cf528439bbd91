"""What the benchmark starts: the fixed backend and each proxy, as an argv plus config files.

Every server listens on 127.0.0.1 only, runs in the foreground with one worker (process or
thread), keeps no access log, and writes its files under the run's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Dict, List, NamedTuple, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)

# Run order. twisted-rpr goes last: it opens one backend connection per request, and the
# tens of thousands of TIME_WAIT sockets it leaves would weigh on whoever ran next.
PROXY_NAMES = ("nginx", "haproxy", "revproxy-cpython", "revproxy-pypy", "twisted-rpr")

FILES = {"1k.bin": 1024, "100k.bin": 102400}

# The load: (name, path, wrk connections), and the warm-up's connections. Every reference
# proxy keeps at least MAX_CONNECTIONS idle upstream connections: with fewer (nginx had
# `keepalive 32` for 50 clients) it closes the surplus after each answer and reconnects on the
# next request, and the benchmark measured that churn (nginx 1k-c50: ~65k req/s at 32, ~90k at
# 64 on the 2-core VM), which inflated every ratio to nginx by about 1.4x.
SCENARIOS = (("1k-c50", "/1k.bin", 50), ("100k-c50", "/100k.bin", 50), ("1k-c1", "/1k.bin", 1))
WARMUP_CONNECTIONS = 50
MAX_CONNECTIONS = max([WARMUP_CONNECTIONS] + [conns for _, _, conns in SCENARIOS])

# The fixed nginx backend answers this path with its stub_status page, whose "accepts" count
# tells how many connections each proxy opened to it during a scenario (churn shows there).
BACKEND_STATUS = "/backend-status"


class Launch(NamedTuple):
    """How to start one server; ``skip`` says why it cannot run here ("" when it can);
    ``env``: variables added to the environment it inherits."""

    argv: List[str]
    skip: str = ""
    env: Dict[str, str] = {}


NGINX_CONF = """worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    # nginx closes a keep-alive connection after 1000 requests by default; the benchmark
    # measures proxying, not reconnecting, so no side gets that extra cost.
    keepalive_requests 1000000;
{body}}}
"""

NGINX_BACKEND = """    sendfile on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location = {status} {{ stub_status; }}
    }}
"""

NGINX_PROXY = """    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive {idle};  # idle connections kept: MAX_CONNECTIONS, so none is closed
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

HAPROXY_CONF = """global
    nbthread 1
    maxconn 4096  # above ~10000 haproxy wants more file descriptors than ulimit -n allows
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    # http-reuse always: any idle server connection serves any client's next request.
    # pool-max-conn: idle server connections kept (-1 is the default, no limit; said here
    # because a limit below MAX_CONNECTIONS would churn as nginx's `keepalive 32` did);
    # maxconn 0: no limit on the connections to the backend either.
    server backend1 127.0.0.1:{upstream} pool-max-conn -1 maxconn 0
"""

# revproxy's defaults except the access log, which is off as it is for nginx and HAProxy.
REVPROXY_CONF = """[logging]
access_log = ""

[pools.bench]
members = ["http://127.0.0.1:{upstream}"]

[[routes]]
name = "default"
pool = "bench"
"""


def revproxy_env() -> Dict[str, str]:
    """The environment that makes a venv's twistd import revproxy from this checkout.

    The venvs hold an editable install of whichever checkout ran scripts/setup-env; without
    this a benchmark run from another worktree would measure that checkout's code instead.
    """
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": REPO + (os.pathsep + path if path else "")}


def missing(tool: str, crs: str) -> Optional[str]:
    """Why a firewall benchmark cannot run: ``tool`` (wrk, valgrind) not installed, or no
    CRS (a directory with ``rules/``) at ``crs``; None when both are there."""
    if shutil.which(tool) is None:
        return "%s is not installed (apt-get install %s)" % (tool, tool)
    if not os.path.isdir(os.path.join(crs, "rules")):
        return "no CRS at %s (--crs DIR)" % crs
    return None


def venv_bin(venv: str, program: str) -> Optional[str]:
    """Path of ``program`` in the repo's ``venv`` (".venv", ".venv-pypy"), or None if absent."""
    path = os.path.join(REPO, venv, "bin", program)
    return path if os.access(path, os.X_OK) else None


def twisted_python() -> str:
    """The CPython that runs Twisted's own servers: .venv's, else the one running us."""
    return venv_bin(".venv", "python") or sys.executable


def write_docroot(work: str) -> str:
    """Create ``work``/www with the static files; readable by nginx's unprivileged worker."""
    docroot = os.path.join(work, "www")
    os.makedirs(docroot)
    for name, size in FILES.items():
        with open(os.path.join(docroot, name), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(docroot, name), 0o644)
    os.chmod(work, 0o755)
    os.chmod(docroot, 0o755)
    return docroot


def nginx_launch(work: str, name: str, body: str) -> Launch:
    """Write ``work``/``name``.conf around ``body`` and return how to start that nginx."""
    nginx = shutil.which("nginx") or _sbin("nginx")
    if nginx is None:
        return Launch([], "nginx is not installed (apt-get install nginx-light)")
    conf = os.path.join(work, name + ".conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, name=name, body=body))
    # -e: nginx opens its error log before reading the config; keep it out of /var/log.
    error_log = os.path.join(work, name + "-error.log")
    return Launch([nginx, "-e", error_log, "-p", work, "-c", conf])


def backend_launch(work: str, port: int, docroot: str, kind: str = "auto") -> Launch:
    """The fixed backend: nginx serving ``docroot`` when installed, else a Twisted static site.

    ``kind`` "nginx" or "twisted" forces one (a missing nginx then gives a Launch with skip).
    """
    if kind != "twisted":
        launch = nginx_launch(work, "backend", NGINX_BACKEND.format(port=port, docroot=docroot,
                                                                   status=BACKEND_STATUS))
        if not launch.skip or kind == "nginx":
            return launch
    script = os.path.join(BENCH, "twisted_server.py")
    return Launch([twisted_python(), script, "static", str(port), docroot])


def proxy_launch(name: str, work: str, port: int, upstream: int, extra: List[str]) -> Launch:
    """How to start proxy ``name`` on ``port`` in front of 127.0.0.1:``upstream``."""
    if name.startswith("revproxy-"):
        venv = ".venv" if name == "revproxy-cpython" else ".venv-pypy"
        twistd = venv_bin(venv, "twistd")
        if twistd is None:
            return Launch([], "%s/ is missing (run scripts/setup-env)" % venv)
        if "--config" not in extra and not any(a.startswith("--config=") for a in extra):
            extra = ["--config", _revproxy_config(work, upstream)] + extra
        return Launch([twistd, "-n", "--pidfile=", "revproxy",
                       "--listen", "tcp:%d:interface=127.0.0.1" % port,
                       "--upstream", "http://127.0.0.1:%d" % upstream] + extra,
                      env=revproxy_env())
    if name == "twisted-rpr":
        script = os.path.join(BENCH, "twisted_server.py")
        return Launch([twisted_python(), script, "rpr", str(port), str(upstream)])
    if name == "nginx":
        return nginx_launch(work, "proxy", NGINX_PROXY.format(port=port, upstream=upstream,
                                                              idle=MAX_CONNECTIONS))
    if name == "haproxy":
        return _haproxy_launch(work, port, upstream)
    raise ValueError("unknown proxy %r" % (name,))


def _revproxy_config(work: str, upstream: int) -> str:
    """Write the benchmark's revproxy config (defaults, access log off); returns its path."""
    path = os.path.join(work, "revproxy.toml")
    with open(path, "w") as f:
        f.write(REVPROXY_CONF.format(upstream=upstream))
    return path


def _haproxy_launch(work: str, port: int, upstream: int) -> Launch:
    haproxy = shutil.which("haproxy") or _sbin("haproxy")
    if haproxy is None:
        return Launch([], "haproxy is not installed (apt-get install haproxy)")
    conf = os.path.join(work, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(HAPROXY_CONF.format(port=port, upstream=upstream))
    return Launch([haproxy, "-db", "-f", conf])  # -db: foreground, one process


def _sbin(program: str) -> Optional[str]:
    """``program`` in /usr/sbin, which a non-root PATH often lacks."""
    path = os.path.join("/usr/sbin", program)
    return path if os.access(path, os.X_OK) else None

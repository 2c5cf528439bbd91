"""The command line of ``python -m revproxy.ctl``: parse (pure), call, print, exit.

    python -m revproxy.ctl [--admin URL] [--token T] [--json] COMMAND
    status | stats | drain POOL/MEMBER | enable POOL/MEMBER | disable POOL/MEMBER
    | weight POOL/MEMBER N | purge URL | purge --prefix P | purge --tag T [--soft] | reload

``--admin`` defaults to ``$REVPROXY_ADMIN`` (a URL, ``host:port`` or a port), else
http://127.0.0.1:9901; ``--token`` to ``$REVPROXY_ADMIN_TOKEN``. Exit status: 0 done,
1 refused by the API, 2 usage, 3 unreachable, 4 unauthorized (401), 5 not found (404).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from revproxy.ctl import client as api
from revproxy.ctl import tables

DEFAULT_ADMIN = "http://127.0.0.1:9901"
MEMBER_ACTIONS = ("drain", "enable", "disable", "weight")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def admin_url(value: Optional[str]) -> str:
    """``--admin``/``$REVPROXY_ADMIN`` as a base URL: a URL as given; ``host:port`` or a bare
    port on http (a bare port on 127.0.0.1)."""
    if not value:
        return DEFAULT_ADMIN
    value = value.strip()
    if "://" in value:
        return value.rstrip("/")
    if value.isdigit():
        return "http://127.0.0.1:%s" % value
    return "http://%s" % value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m revproxy.ctl",
                description="Talk to a running revproxy's admin API ([admin] listen).",
                epilog="exit status: 0 done, 1 refused by the API, 2 usage, 3 unreachable, "
                       "4 unauthorized (401), 5 not found (404)")
    p.add_argument("--admin", default=None,
                   help="admin API URL (default $REVPROXY_ADMIN, else %s)" % DEFAULT_ADMIN)
    p.add_argument("--token", default=None,
                   help="bearer token (default $REVPROXY_ADMIN_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("status", help="listeners, pools, members, cache, workers")
    commands.add_parser("stats", help="the live counters the dashboard polls")
    for action in MEMBER_ACTIONS:
        sub = commands.add_parser(action, help="%s a member" % action if action != "weight"
                                  else "set a member's weight")
        sub.add_argument("target", metavar="POOL/MEMBER")
        if action == "weight":
            sub.add_argument("weight", type=int, metavar="N")
    purge = commands.add_parser("purge", help="purge the cache by URL, prefix or tag")
    purge.add_argument("url", nargs="?", help="an absolute URL (with its variants)")
    purge.add_argument("--prefix", help="every key starting with it (http://host/path/)")
    purge.add_argument("--tag", help="every response that carried it (Cache-Tag)")
    purge.add_argument("--soft", action="store_true", help="mark stale instead of deleting")
    commands.add_parser("reload", help="re-read the config (as SIGHUP)")
    return p


def parse(argv: List[str], environ) -> argparse.Namespace:
    """The parsed command line with ``admin`` and ``token`` resolved; raises UsageError."""
    args = parser().parse_args(argv)
    args.admin = admin_url(args.admin or environ.get("REVPROXY_ADMIN"))
    if args.token is None:
        args.token = environ.get("REVPROXY_ADMIN_TOKEN") or None
    if args.command in MEMBER_ACTIONS:
        pool, sep, member = args.target.partition("/")
        if not sep or not pool or not member:
            raise UsageError("%s: expected POOL/MEMBER, e.g. main/127.0.0.1:8001, not %r"
                             % (args.command, args.target))
        args.pool, args.member = pool, member
        if args.command == "weight" and not args.weight >= 0:
            raise UsageError("weight: expected a number >= 0")
    if args.command == "purge":
        given = [v for v in (args.url, args.prefix, args.tag) if v is not None]
        if len(given) != 1:
            raise UsageError("purge: give exactly one of URL, --prefix P, --tag T")
    return args


def call(admin: api.AdminClient, args):
    """The Deferred of the API call ``args`` asks for."""
    if args.command == "status":
        return admin.status()
    if args.command == "stats":
        return admin.stats()
    if args.command in MEMBER_ACTIONS:
        return admin.member(args.pool, args.member, args.command,
                            args.weight if args.command == "weight" else None)
    if args.command == "purge":
        return admin.purge(args.url, args.prefix, args.tag, args.soft)
    return admin.reload()


def refused(args, answer) -> Optional[str]:
    """The reason when a 2xx answer still says it was not done (a reload refused)."""
    if isinstance(answer, dict):
        for key in ("accepted", "ok", "reloaded"):
            if answer.get(key) is False:
                return str(answer.get("error") or "refused")
    return None


def render(args, answer) -> str:
    """What to print for a successful ``answer``."""
    if args.json:
        return json.dumps(answer, indent=2, sort_keys=True)
    if args.command == "status":
        return tables.status_text(answer)
    if args.command == "stats":
        return tables.stats_text(answer)
    what = args.command
    if args.command in MEMBER_ACTIONS:
        what = "%s %s/%s" % (args.command, args.pool, args.member)
    return tables.action_text(what, answer)


def run(reactor, args, out, err):
    """Run ``args`` on ``reactor``; a Deferred of the exit status."""
    admin = api.AdminClient(reactor, args.admin, args.token, timeout=args.timeout)

    def done(answer):
        reason = refused(args, answer)
        if args.json or reason is None:
            out.write(render(args, answer) + "\n")
        if reason is not None:
            err.write("revproxy.ctl: %s refused: %s\n" % (args.command, reason))
            return api.REFUSED
        return api.OK

    def failed(failure):
        failure.trap(api.AdminError)
        err.write("revproxy.ctl: %s\n" % failure.value.message)
        return failure.value.code

    return call(admin, args).addCallbacks(done, failed)


def main(argv=None, environ=None, out=None, err=None, reactor=None) -> int:
    """Parse, run on the reactor until done, return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parse(argv, environ)
    except UsageError as e:
        err.write("revproxy.ctl: %s\n(see python -m revproxy.ctl --help)\n" % e)
        return api.USAGE
    if reactor is None:
        from twisted.internet import reactor
    status = []

    def finish(code):
        status.append(code)
        reactor.stop()

    reactor.callWhenRunning(lambda: run(reactor, args, out, err).addBoth(finish))
    reactor.run(installSignalHandlers=False)
    return status[0] if status else api.UNREACHABLE

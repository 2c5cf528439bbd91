"""Building the firewall of one runtime from ``[firewall]``: the CRS found, the rule files
read and compiled, the per-rule and per-tag modes resolved, the Python rules built.

``build_firewall`` runs in ``tap.build_runtime`` at start-up and on every reload (SIGHUP),
so rule files are read again each time. Every problem is a ``ConfigError``: a rule file's
names its file and line (the engine's ``SecLangError``), so a broken file fails start-up
and a reload keeps the running rules. A reload logs what changed (rules added, removed,
modes). ``Runtime.firewall`` is the built ``Firewall`` (None when the firewall is off).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional

from twisted.logger import Logger

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.firewall.crs import CRSLayout, CRSNotFound, find_crs  # noqa: F401 (tests)
from revproxy.firewall.hook import FirewallHook, record_decision
from revproxy.firewall.seclang.api import SecLangError
from revproxy.firewall.sources import rule_sources
from revproxy.firewall.stats import FirewallStats

log = Logger(namespace="revproxy.firewall")


def needs_body(rule) -> bool:
    """Whether a Python rule reads the request body (its optional ``needs_body``
    attribute; True when it does not say, so a rule written before it existed still sees
    the body)."""
    return bool(getattr(rule, "needs_body", True))


class Firewall:
    """The firewall of one runtime: ``waf`` (the compiled SecLang rules, None with Python
    rules only), ``before`` / ``after`` (Python rules), ``hook`` (its ``IRequestHook``),
    ``counters`` (``FirewallStats``, handed on across reloads), ``stats()`` for the admin
    status."""

    def __init__(self, settings, waf, before, after, counters, clock, crs=None,
                 rule_modes=None, load_seconds=0.0):
        self.settings = settings
        self.waf = waf
        self.before = tuple(before)
        self.after = tuple(after)
        self.counters = counters
        self.clock = clock
        self.crs = crs  # the CRSLayout, or None
        self.rule_modes = dict(rule_modes or {})  # rule id -> "off" | "detect" | "enforce"
        self.load_seconds = load_seconds
        self._routes = dict(settings.routes)
        self._types = tuple(t.encode("ascii") for t in settings.response_body_types)
        # body work only when a loaded rule needs it (SecRequestBodyAccess /
        # SecResponseBodyAccess as the rule files left them)
        # "before" rules that do not need the body run at head time, before SecLang
        # phase 1; the others (and every "after" rule) once the body is read
        self.head_rules = tuple(r for r in self.before if not needs_body(r))
        self.body_rules = tuple(r for r in self.before if needs_body(r))
        self.reads_body = any(needs_body(r) for r in self.before + self.after) or (
            waf is not None and getattr(waf, "needs_request_body", True))
        self.inspects_response = waf is not None and getattr(
            waf, "needs_response_body", settings.response_body_access)
        self.hook = FirewallHook(self)

    def route_mode(self, route) -> str:
        """"on", "detect" or "off" for a request on ``route`` (``[firewall] routes``)."""
        if route is not None and self._routes:
            return self._routes.get(route.name, self.settings.mode)
        return self.settings.mode

    def status_for(self, status: int) -> int:
        """A denial's status: the rule's own, except the engine's default 403, which is
        ``[firewall] status``."""
        return self.settings.status if status == 403 else status

    def response_prefix(self, response) -> int:
        """Bytes of ``response``'s body phase 4 inspects (0: none): the response body
        limit, or less when its ``content_length`` is known; only for the configured media
        types and unencoded bodies."""
        if not self.inspects_response:
            return 0
        ctype = b""
        for name, value in response.headers:
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                return 0
            if name == b"content-type":
                ctype = value.split(b";")[0].strip().lower()
        if ctype not in self._types:
            return 0
        want = self.settings.response_body_limit
        length = getattr(response, "content_length", None)
        if length is not None:
            want = min(want, length)
        return want

    def record(self, ctx, outcome, matches, score):
        record_decision(self, ctx, outcome, matches, score, self.clock.seconds())

    def rule_mode(self, key) -> str:
        if isinstance(key, int):
            return self.rule_modes.get(key, "enforce")
        return "enforce"

    def _message(self, key) -> str:
        if self.waf is not None and isinstance(key, int):
            described = self.waf.describe().get(key)
            if described:
                msg = described[1]
                return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        return ""

    def stats(self) -> dict:
        """The admin status: mode, rule set, counters, hits and samples per rule."""
        settings = self.settings
        document = {
            "mode": settings.mode,
            "crs": self.crs.root if self.crs is not None else None,
            "crs_version": self.crs.version if self.crs is not None else None,
            "paranoia_level": settings.paranoia_level,
            "inbound_threshold": settings.inbound_threshold,
            "outbound_threshold": settings.outbound_threshold,
            "rules_loaded": len(self.waf.rule_ids) if self.waf is not None else 0,
            "python_rules": [rule.name for rule in self.before + self.after],
            "routes": dict(settings.routes),
            "rule_modes": {str(k): v for k, v in sorted(self.rule_modes.items())},
        }
        known = set(self.waf.rule_ids) if self.waf is not None else set()
        known.update("python:%s" % rule.name for rule in self.before + self.after)
        known.update(("limit", "python"))
        document.update(self.counters.document(self._message, self.rule_mode, known))
        return document


def _engine_loader():
    try:
        from revproxy.firewall.seclang.engine import load_waf
    except ImportError as e:  # the engine is a separate piece of work
        raise ConfigError("<firewall>", "[firewall]", NO_VALUE,
                          "the SecLang engine is not available: %s" % e) from None
    return load_waf


def build_firewall(config, reactor, previous: Optional[Firewall] = None,
                   load_waf: Optional[Callable] = None, factories=None) -> Optional[Firewall]:
    """The ``Firewall`` of ``config.firewall`` (None when off, or when ``crs = "auto"`` finds
    no CRS and nothing else is configured: logged). Raises ``ConfigError``."""
    settings = config.firewall
    source = config.source
    if not settings.enabled:
        if previous is not None:
            log.info("firewall: off")
        return None
    layout = None
    if settings.crs:
        try:
            layout = find_crs(settings.crs)
        except CRSNotFound as e:
            raise ConfigError(source, "[firewall] crs", settings.crs, str(e)) from None
        if layout is None:
            log.warn("firewall: no Core Rule Set found (crs = \"auto\" looks for Debian's "
                     "modsecurity-crs: apt-get install modsecurity-crs, or set [firewall] crs "
                     "to a CRS directory)")
            if not (settings.rules or settings.python):
                log.warn("firewall: OFF (no rules to run)")
                return None
    if layout is not None and settings.crs == "auto" and load_waf is None:
        try:
            load_waf = _engine_loader()
        except ConfigError as e:  # "auto" is best effort: say so, run without the CRS
            log.warn("firewall: {why}; the CRS found at {root} is not loaded",
                     why=e.message, root=layout.root)
            layout = None
            if not (settings.rules or settings.python):
                log.warn("firewall: OFF (no rules to run)")
                return None
    from revproxy.firewall.pyrules import build_python_rules

    before, after = build_python_rules(settings, source, reactor, factories)
    waf, modes, seconds = None, {}, 0.0
    if layout is not None or settings.rules or settings.exclusions_before \
            or settings.exclusions_after:
        waf, modes, seconds = _load(settings, layout, source, load_waf or _engine_loader())
    counters = previous.counters if previous is not None else FirewallStats(
        settings.samples_per_rule)
    counters.resize(settings.samples_per_rule)
    firewall = Firewall(settings, waf, before, after, counters, reactor, layout, modes, seconds)
    _log_built(firewall, previous)
    return firewall


def _load(settings, layout, source, load_waf):
    """Compile the rules: ``(waf, rule modes, seconds)``."""
    sources = rule_sources(settings, layout, source)
    started = time.monotonic()
    try:
        waf = load_waf(sources)
        modes = resolve_modes(settings.modes, waf)
        if modes:
            waf = load_waf(sources, modes=modes)
    except SecLangError as e:
        raise ConfigError(source, "[firewall]", NO_VALUE, "rule file error: %s" % e) from None
    return waf, modes, time.monotonic() - started


def resolve_modes(entries, waf) -> Dict[int, str]:
    """Rule id -> mode for the ``[[firewall.modes]]`` entries (later entries win; tags
    resolved with ``waf.ids_with_tag``). Ids the rule set does not have are ignored (a
    CRS upgrade may drop them) and logged."""
    modes: Dict[int, str] = {}
    for entry in entries:
        for rule_id in entry.ids:
            if rule_id not in waf.rule_ids:
                log.warn("firewall: [[firewall.modes]] names rule {id}, which is not loaded",
                         id=rule_id)
                continue
            modes[rule_id] = entry.mode
        for tag in entry.tags:
            ids = waf.ids_with_tag(tag)
            if not ids:
                log.warn("firewall: [[firewall.modes]] tag {tag!r} matches no rule", tag=tag)
            for rule_id in ids:
                modes[rule_id] = entry.mode
    return {k: v for k, v in modes.items() if v != "enforce"}


def _log_built(firewall, previous):
    settings = firewall.settings
    layout = firewall.crs
    what = "CRS %d (%s) at paranoia level %d" % (layout.version, layout.root,
                                                 settings.paranoia_level) if layout else "no CRS"
    log.info("firewall: mode {mode}, {what}, {n} SecLang rules, {p} Python rules "
             "(compiled in {s:.2f} s)", mode=settings.mode, what=what,
             n=len(firewall.waf.rule_ids) if firewall.waf is not None else 0,
             p=len(firewall.before) + len(firewall.after), s=firewall.load_seconds)
    if previous is None:
        return
    for line in describe_changes(previous, firewall):
        log.info("reload: firewall {change}", change=line)


def describe_changes(old: Firewall, new: Firewall):
    """Lines saying what a reload changed: mode, rules added / removed / changed, per-rule
    modes, Python rules."""
    lines = []
    if old.settings.mode != new.settings.mode:
        lines.append("mode %s -> %s" % (old.settings.mode, new.settings.mode))
    before = old.waf.describe() if old.waf is not None else {}
    after = new.waf.describe() if new.waf is not None else {}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    for label, ids in (("rules added", added), ("rules removed", removed),
                       ("rules changed", changed)):
        if ids:
            shown = ", ".join(str(i) for i in ids[:20])
            more = " (and %d more)" % (len(ids) - 20) if len(ids) > 20 else ""
            lines.append("%s: %s%s" % (label, shown, more))
    for rule_id in sorted(set(old.rule_modes) | set(new.rule_modes)):
        was, now = old.rule_mode(rule_id), new.rule_mode(rule_id)
        if was != now:
            lines.append("rule %s mode %s -> %s" % (rule_id, was, now))
    names_old = [r.name for r in old.before + old.after]
    names_new = [r.name for r in new.before + new.after]
    if names_old != names_new:
        lines.append("Python rules %s -> %s" % (names_old, names_new))
    return lines

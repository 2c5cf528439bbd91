"""Directives -> compiled rules and engine settings (the load half of ``engine``).

``Loader`` reads sources in order, follows ``Include`` (relative to the including file,
globs allowed), compiles ``SecRule`` / ``SecAction`` / ``SecMarker`` into ``rules.Rule``
(chains linked), applies ``SecDefaultAction`` per phase, the removal and update directives,
and records the engine settings. Every problem is a ``SecLangError`` with file and line.

Directives accepted and recorded with no effect on evaluation (the proxy does its own logs,
uploads and storage): SecAudit*, SecDebugLog*, SecTmpDir, SecDataDir, SecUploadDir,
SecUploadKeepFiles, SecUploadFileMode, SecUploadFileLimit, SecTmpSaveUploadedFiles,
SecUnicodeMapFile, SecPcreMatchLimit, SecPcreMatchLimitRecursion, SecStatusEngine,
SecCollectionTimeout, SecRequestBodyInMemoryLimit, SecXmlExternalEntity, SecComponentSignature,
SecServerSignature, SecWebAppId, SecHashEngine. Anything else is refused.
"""

from __future__ import annotations

import glob
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .actions import compile_actions, phase_of
from .api import SecLangError
from .ctl import parse_id_ranges
from .parser import Directive, parse, split_actions, split_operator, split_variables
from .rules import Rule, build_target


class Components(NamedTuple):
    """The pieces other modules provide (injectable so tests can stand in for them)."""

    build_operator: Callable
    transforms: Dict[str, Callable[[bytes], bytes]]
    process_body: Callable
    parse_query: Callable
    parse_cookies: Callable
    body_limits: Optional[Callable] = None  # Settings -> the ``limits`` for process_body


class Settings:
    """Engine-wide settings from directives (ModSecurity's defaults)."""

    def __init__(self) -> None:
        self.rule_engine = "On"
        self.request_body_access = False
        self.response_body_access = False
        self.request_body_limit = 13107200
        self.request_body_no_files_limit = 1048576
        self.request_body_limit_action = "Reject"
        self.response_body_limit = 524288
        self.response_body_limit_action = "ProcessPartial"
        self.response_mime_types = [b"text/plain", b"text/html"]
        self.arguments_limit = 1000
        self.json_depth_limit = 1024
        self.argument_separator = b"&"
        self.cookie_format = 0
        self.component_signatures: List[str] = []
        self.recorded: List[Tuple[str, Tuple[str, ...]]] = []  # accepted, no effect


_RECORDED = frozenset(n.lower() for n in """
SecAuditEngine SecAuditLog SecAuditLog2 SecAuditLogDirMode SecAuditLogFileMode
SecAuditLogFormat SecAuditLogParts SecAuditLogRelevantStatus SecAuditLogStorageDir
SecAuditLogType SecDebugLog SecDebugLogLevel SecTmpDir SecDataDir SecUploadDir
SecUploadKeepFiles SecUploadFileMode SecUploadFileLimit SecTmpSaveUploadedFiles
SecUnicodeMapFile SecPcreMatchLimit SecPcreMatchLimitRecursion SecStatusEngine
SecCollectionTimeout SecRequestBodyInMemoryLimit SecXmlExternalEntity SecServerSignature
SecWebAppId SecHashEngine SecHashKey SecHashParam SecHashMethodRx SecHashMethodPm
SecSensorId SecConnEngine SecRuleInheritance SecGeoLookupDb
""".split())

_ENGINE_MODES = {"on": "On", "off": "Off", "detectiononly": "DetectionOnly"}


class Loader:
    """Accumulates rules and settings from directives, in load order."""

    def __init__(self, components: Components) -> None:
        self.c = components
        self.rules: List[Rule] = []          # chain starters and markers, in order
        self.defaults: Dict[int, List] = {}  # phase -> SecDefaultAction actions
        self.settings = Settings()
        self.warnings: List[str] = []       # accepted with a documented limitation
        self._open_chain: Optional[Rule] = None
        self._ids: Dict[int, Rule] = {}
        self._depth = 0

    # --- sources ----------------------------------------------------------------------
    def load_text(self, text: str, file: str) -> None:
        for d in parse(text, file):
            self.directive(d)

    def load_file(self, path: str, file: str, line: int) -> None:
        try:
            with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as exc:
            raise SecLangError(file, line, "cannot read %s: %s" % (path, exc.strerror))
        self.load_text(text, path)

    def finish(self, file: str) -> None:
        if self._open_chain is not None:
            r = self._open_chain
            raise SecLangError(r.file, r.line, "chain action with no rule after it")

    # --- directives -------------------------------------------------------------------
    def directive(self, d: Directive) -> None:
        name = d.name.lower()
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, d)
        elif name in _RECORDED:
            self.settings.recorded.append((d.name, d.args))
        else:
            raise SecLangError(d.file, d.line, "unsupported directive %s" % d.name)

    def _args(self, d: Directive, low: int, high: int) -> Tuple[str, ...]:
        if not low <= len(d.args) <= high:
            want = str(low) if low == high else "%d to %d" % (low, high)
            raise SecLangError(d.file, d.line, "%s takes %s argument(s), got %d"
                               % (d.name, want, len(d.args)))
        return d.args

    def _include(self, d: Directive, optional: bool = False) -> None:
        (pattern,) = self._args(d, 1, 1)
        base = os.path.dirname(d.file) if os.path.isabs(d.file) or os.path.dirname(d.file) \
            else os.getcwd()
        path = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        if glob.has_magic(path):
            paths = sorted(glob.glob(path))
            if not paths and not optional:
                raise SecLangError(d.file, d.line, "Include %s matched no file" % pattern)
        else:
            paths = [path] if not optional or os.path.exists(path) else []
        if self._depth > 20:
            raise SecLangError(d.file, d.line, "Include nested too deeply (loop?)")
        self._depth += 1
        try:
            for p in paths:
                self.load_file(p, d.file, d.line)
        finally:
            self._depth -= 1

    def _sec_rule(self, d: Directive) -> None:
        args = self._args(d, 2, 3)
        actions = split_actions(args[2], d.file, d.line) if len(args) == 3 else []
        rule = self._new_rule(d, actions)
        for spec in split_variables(args[0], d.file, d.line):
            target = build_target(spec, d.file, d.line)
            (rule.exclusions if spec.exclude else rule.targets).append(target)
        if not rule.targets:
            raise SecLangError(d.file, d.line, "SecRule with no target")
        negated, op_name, op_arg = split_operator(args[1])
        rule.negated, rule.op_name, rule.op_arg = negated, op_name, op_arg
        rule.operator = self._operator(op_name, op_arg, d)
        self._add(rule)

    def _operator(self, name: str, arg: str, d: Directive):
        base_dir = os.path.dirname(os.path.abspath(d.file)) if d.file != "<config>" \
            else os.getcwd()
        try:
            return self.c.build_operator(name, arg, base_dir)
        except SecLangError:
            raise
        except Exception as exc:  # the operators module names the problem
            if name.lower() in _NEVER_MATCHING:
                self.warnings.append("%s:%d: @%s %s" % (d.file, d.line, name,
                                                        _NEVER_MATCHING[name.lower()]))
                return _never_matches
            kind = type(exc).__name__
            if "Unsupported" in kind or "Unknown" in kind or isinstance(exc, KeyError):
                raise SecLangError(d.file, d.line, "unknown or unsupported operator @%s"
                                   % name)
            raise SecLangError(d.file, d.line, "operator @%s: %s" % (name, exc))

    def _sec_action(self, d: Directive) -> None:
        args = self._args(d, 0, 1)
        actions = split_actions(args[0], d.file, d.line) if args else []
        rule = self._new_rule(d, actions)
        rule.always = True
        self._add(rule)

    def _new_rule(self, d: Directive, actions) -> Rule:
        rule = Rule(d.file, d.line)
        parent = self._open_chain
        if parent is not None:
            rule.phase = parent.phase
            compile_actions(rule, actions, self.defaults.get(parent.phase, ()),
                            self.c.transforms, child=True)
            rule.phase = parent.phase
            rule.id = parent.id
        else:
            phase = phase_of(actions, d.file, d.line)
            compile_actions(rule, actions, self.defaults.get(phase, _BUILTIN_DEFAULT),
                            self.c.transforms)
            if rule.id == 0:
                raise SecLangError(d.file, d.line, "rule has no id action")
            if rule.id in self._ids:
                raise SecLangError(d.file, d.line, "duplicate rule id %d (first at %s:%d)"
                                   % (rule.id, self._ids[rule.id].file,
                                      self._ids[rule.id].line))
        return rule

    def _add(self, rule: Rule) -> None:
        parent = self._open_chain
        if parent is not None:
            parent.child = rule
            rule.parent = parent
        else:
            self.rules.append(rule)
            self._ids[rule.id] = rule
        self._open_chain = rule if rule.chain else None

    def _marker(self, d: Directive) -> None:
        (name,) = self._args(d, 1, 1)
        self._close_chain(d)
        rule = Rule(d.file, d.line)
        rule.marker = name
        self.rules.append(rule)

    def _close_chain(self, d: Directive) -> None:
        if self._open_chain is not None:
            r = self._open_chain
            raise SecLangError(r.file, r.line, "chain action with no rule after it "
                                               "(next is %s at line %d)" % (d.name, d.line))

    def _default_action(self, d: Directive) -> None:
        (text,) = self._args(d, 1, 1)
        actions = split_actions(text, d.file, d.line)
        if not any(n.lower() == "phase" for n, _ in actions):
            raise SecLangError(d.file, d.line, "SecDefaultAction needs a phase")
        for n, _ in actions:
            if n.lower() in ("id", "chain", "skip", "skipafter", "msg", "tag", "logdata"):
                raise SecLangError(d.file, d.line, "SecDefaultAction may not hold %s" % n)
        # validate now so an error points at this line
        compile_actions(Rule(d.file, d.line), actions, (), self.c.transforms)
        self.defaults[phase_of(actions, d.file, d.line)] = actions

    # --- removal and updates ------------------------------------------------------------
    def _matching(self, d: Directive, how: str, value: str) -> List[Rule]:
        if how == "id":
            ranges = parse_id_ranges(" ".join(d.args) if value is None else value,
                                     d.file, d.line)
            return [r for r in self.rules if r.marker is None
                    and any(a <= r.id <= b for a, b in ranges)]
        if how == "tag":
            return [r for r in self.rules if value in r.tags]
        return [r for r in self.rules if r.msg is not None and r.msg.text == value]

    def _remove(self, d: Directive, how: str) -> None:
        if not d.args:
            raise SecLangError(d.file, d.line, "%s needs an argument" % d.name)
        if how == "id":
            doomed = set(map(id, self._matching(d, "id", None)))
        else:
            doomed = set()
            for value in d.args:
                doomed |= set(map(id, self._matching(d, how, value)))
        self.rules = [r for r in self.rules if id(r) not in doomed]
        self._ids = {r.id: r for r in self.rules if r.marker is None}

    def _update_target(self, d: Directive, how: str) -> None:
        args = self._args(d, 2, 3)
        if len(args) == 3:
            raise SecLangError(d.file, d.line, "%s with a replacement target is not "
                                               "supported" % d.name)
        specs = split_variables(args[1], d.file, d.line)
        for rule in self._matching(d, how, args[0]):
            for spec in specs:
                target = build_target(spec, d.file, d.line)
                (rule.exclusions if spec.exclude else rule.targets).append(target)

    def _update_action(self, d: Directive) -> None:
        ids, text = self._args(d, 2, 2)
        actions = split_actions(text, d.file, d.line)
        for n, _ in actions:
            if n.lower() in ("id", "phase", "chain"):
                raise SecLangError(d.file, d.line, "SecRuleUpdateActionById may not change %s"
                                   % n)
        for rule in self._matching(d, "id", ids):
            fresh = Rule(rule.file, rule.line)
            new = [a for a in rule.raw_actions
                   if not (_is_disruptive(a[0]) and any(_is_disruptive(n) for n, _ in actions))]
            compile_actions(fresh, new + actions, self.defaults.get(rule.phase,
                                                                    _BUILTIN_DEFAULT),
                            self.c.transforms)
            for name in ("msg", "logdata", "tags", "severity", "ver", "rev", "maturity",
                         "accuracy", "disruptive", "status", "redirect", "allow_scope",
                         "skip", "skip_after", "capture", "multi_match", "log", "auditlog",
                         "effects", "t_names", "t_funcs", "t_ids", "t_class", "t_runs",
                         "raw_actions"):
                setattr(rule, name, getattr(fresh, name))

    def _setting(self, d: Directive) -> None:
        name = d.name.lower()
        s = self.settings
        if name == "secresponsebodymimetypesclear":
            self._args(d, 0, 0)
            s.response_mime_types = []
            return
        if name == "secresponsebodymimetype":
            s.response_mime_types = [t.encode("latin-1").lower() for v in d.args
                                     for t in v.split()]
            return
        (value,) = self._args(d, 1, 1)
        if name == "secruleengine":
            mode = _ENGINE_MODES.get(value.lower())
            if mode is None:
                raise SecLangError(d.file, d.line, "SecRuleEngine expects On, Off or "
                                                   "DetectionOnly, got %r" % value)
            s.rule_engine = mode
        elif name in ("secrequestbodyaccess", "secresponsebodyaccess"):
            if value.lower() not in ("on", "off"):
                raise SecLangError(d.file, d.line, "%s expects On or Off" % d.name)
            attr = "request_body_access" if "request" in name else "response_body_access"
            setattr(s, attr, value.lower() == "on")
        elif name in _INT_SETTINGS:
            try:
                setattr(s, _INT_SETTINGS[name], int(value))
            except ValueError:
                raise SecLangError(d.file, d.line, "%s expects a number, got %r"
                                   % (d.name, value))
        elif name in ("secrequestbodylimitaction", "secresponsebodylimitaction"):
            if value.lower() not in ("reject", "processpartial"):
                raise SecLangError(d.file, d.line, "%s expects Reject or ProcessPartial"
                                   % d.name)
            attr = "request_body_limit_action" if "request" in name \
                else "response_body_limit_action"
            setattr(s, attr, "Reject" if value.lower() == "reject" else "ProcessPartial")
        elif name == "secargumentseparator":
            s.argument_separator = value.encode("latin-1")
        elif name == "seccookieformat":
            if value not in ("0", "1"):
                raise SecLangError(d.file, d.line, "SecCookieFormat expects 0 or 1")
            s.cookie_format = int(value)
        elif name == "seccomponentsignature":
            s.component_signatures.append(value)


# Operators the CRS 3 files use that need services the engine does not have (a GeoIP
# database, DNS block lists): they load, never match, and say so in ``WAF.warnings``.
_NEVER_MATCHING = {
    "geolookup": "never matches (no GeoIP database: GEO stays empty)",
    "rbl": "never matches (no DNS block-list lookups at request time)",
}


def _never_matches(value: bytes, expand) -> None:
    return None


def _is_disruptive(name: str) -> bool:
    return name.lower() in ("pass", "deny", "drop", "allow", "block", "redirect")


_BUILTIN_DEFAULT = (("phase", "2"), ("log", None), ("auditlog", None), ("pass", None))

_INT_SETTINGS = {
    "secrequestbodylimit": "request_body_limit",
    "secrequestbodynofileslimit": "request_body_no_files_limit",
    "secresponsebodylimit": "response_body_limit",
    "secargumentslimit": "arguments_limit",
    "secrequestbodyjsondepthlimit": "json_depth_limit",
}

_HANDLERS: Dict[str, Callable[[Loader, Directive], None]] = {
    "include": Loader._include,
    "includeoptional": lambda self, d: self._include(d, optional=True),
    "secrule": Loader._sec_rule,
    "secaction": Loader._sec_action,
    "secmarker": Loader._marker,
    "secdefaultaction": Loader._default_action,
    "secruleremovebyid": lambda self, d: self._remove(d, "id"),
    "secruleremovebytag": lambda self, d: self._remove(d, "tag"),
    "secruleremovebymsg": lambda self, d: self._remove(d, "msg"),
    "secruleupdatetargetbyid": lambda self, d: self._update_target(d, "id"),
    "secruleupdatetargetbytag": lambda self, d: self._update_target(d, "tag"),
    "secruleupdatetargetbymsg": lambda self, d: self._update_target(d, "msg"),
    "secruleupdateactionbyid": Loader._update_action,
}
for _name in ("secruleengine", "secrequestbodyaccess", "secresponsebodyaccess",
              "secrequestbodylimitaction", "secresponsebodylimitaction",
              "secresponsebodymimetype", "secargumentseparator", "seccookieformat",
              "seccomponentsignature", "secresponsebodymimetypesclear") + tuple(_INT_SETTINGS):
    _HANDLERS[_name] = Loader._setting


def load_sources(sources: Sequence[Tuple[str, str]], directives: Sequence[str],
                 components: Components) -> Loader:
    loader = Loader(components)
    for name, text in sources:
        loader.load_text(text, name)
        loader.finish(name)
    for text in directives:
        loader.load_text(text, "<config>")
        loader.finish("<config>")
    return loader

"""Action semantics: a rule's action list -> fields of its ``rules.Rule`` and its effects.

``compile_actions(rule, actions, defaults, ...)`` applies the phase's ``SecDefaultAction``
list, then the rule's own, in order (a later action overrides an earlier one; ``t:none``
drops every transformation before it, the defaults' included; ``block`` becomes the
default's disruptive action). Non-disruptive actions that change the transaction become
*effects* (``SetVar``, ``SetEnv``, ``Ctl``) run for each matched value, in written order.

Accepted with no effect (documented in docs/firewall-engine.md): ``expirevar``,
``deprecatevar``, ``initcol`` (collections other than TX live only in the transaction),
``setuid``, ``setsid``, ``sanitise*``, ``xmlns``, ``auditlog``/``noauditlog`` (recorded),
``ver``/``rev``/``maturity``/``accuracy`` (recorded). Refused: ``exec``, ``append``,
``prepend``, ``proxy`` and anything unknown.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .api import SecLangError
from .ctl import Ctl, compile_ctl
from .macros import compile_macro
from .rules import Rule

Actions = Sequence[Tuple[str, Optional[str]]]

SEVERITIES = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
_PHASES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "request": 2, "response": 4, "logging": 5}
_DISRUPTIVE = ("pass", "deny", "drop", "allow", "block", "redirect", "proxy")
_NO_EFFECT = frozenset((
    "expirevar", "deprecatevar", "initcol", "setuid", "setsid", "setrsc", "sanitisearg",
    "sanitisematched", "sanitisematchedbytes", "sanitiserequestheader",
    "sanitiseresponseheader", "xmlns", "auditlog", "noauditlog",
))
_REFUSED = frozenset(("exec", "append", "prepend", "proxy", "pause"))


def phase_of(actions: Actions, file: str, line: int, default: int = 2) -> int:
    phase = default
    for name, value in actions:
        if name.lower() == "phase":
            phase = parse_phase(value, file, line)
    return phase


def parse_phase(value: Optional[str], file: str, line: int) -> int:
    p = _PHASES.get((value or "").strip().lower())
    if p is None:
        raise SecLangError(file, line, "bad phase %r (expected 1-5, request, response, "
                                       "logging)" % value)
    return p


def compile_actions(rule: Rule, actions: Actions, defaults: Actions,
                    transforms: Dict[str, Callable[[bytes], bytes]], *,
                    child: bool = False) -> None:
    """Fill ``rule`` from ``defaults`` then ``actions`` (see the module docstring)."""
    file, line = rule.file, rule.line
    t_names: List[str] = []
    default_disruptive, default_status = None, 0
    effects: List = []
    tags: List[str] = []
    for source, items in (("default", defaults), ("rule", actions)):
        for raw_name, value in items:
            name = raw_name.lower()
            if source == "default" and (name in ("id", "phase") or (child and name not in ("t",))):
                continue
            if name == "t":
                _add_transform(t_names, value, transforms, file, line)
            elif name in _DISRUPTIVE or name == "status":
                if child and name != "status" and source == "rule" and name != "pass":
                    raise SecLangError(file, line, "disruptive action %s in a chained rule "
                                                   "(only the chain starter may have one)" % name)
                _disruptive(rule, name, value, file, line)
            else:
                _other(rule, name, value, effects, tags, file, line)
        if source == "default":
            # what ``block`` stands for; the rule keeps both unless it says otherwise
            default_disruptive, default_status = rule.disruptive, rule.status
    if rule.disruptive == "block":
        rule.disruptive = default_disruptive if default_disruptive not in (None, "block") \
            else "pass"
    rule.set_transforms(t_names, transforms)
    rule.effects = effects
    rule.tags = tuple(tags)
    rule.raw_actions = list(actions)


def _add_transform(names: List[str], value: Optional[str], table, file: str, line: int) -> None:
    t = (value or "").strip().lower()
    if t == "none":
        del names[:]
        return
    if t not in table:
        raise SecLangError(file, line, "unknown transformation %s" % (value or ""))
    names.append(t)


def _disruptive(rule: Rule, name: str, value: Optional[str], file: str, line: int) -> None:
    if name == "status":
        try:
            rule.status = int(value or "")
        except ValueError:
            raise SecLangError(file, line, "bad status %r" % value)
        return
    if name == "proxy":
        raise SecLangError(file, line, "unsupported action proxy")
    rule.disruptive = name
    if name == "redirect":
        if not value:
            raise SecLangError(file, line, "redirect needs a URL")
        rule.redirect = compile_macro(value)
    elif name == "allow":
        scope = (value or "").strip().lower()
        if scope not in ("", "phase", "request"):
            raise SecLangError(file, line, "bad allow scope %r (expected phase or request)"
                               % value)
        rule.allow_scope = scope


def _other(rule: Rule, name: str, value: Optional[str], effects: List, tags: List[str],
           file: str, line: int) -> None:
    if name == "id":
        try:
            rule.id = int(value or "")
        except ValueError:
            raise SecLangError(file, line, "bad rule id %r" % value)
        if rule.id <= 0:
            raise SecLangError(file, line, "bad rule id %r (must be positive)" % value)
    elif name == "phase":
        rule.phase = parse_phase(value, file, line)
    elif name == "msg":
        rule.msg = compile_macro(value or "")
    elif name == "logdata":
        rule.logdata = compile_macro(value or "")
    elif name == "tag":
        tags.append(value or "")
    elif name == "severity":
        rule.severity = _severity(value, file, line)
    elif name in ("ver", "rev", "maturity", "accuracy"):
        setattr(rule, name, value or "")
    elif name == "capture":
        rule.capture = True
    elif name == "multimatch":
        rule.multi_match = True
    elif name == "chain":
        rule.chain = True
    elif name == "log":
        rule.log = True
    elif name == "nolog":
        rule.log = False
        rule.auditlog = False
    elif name == "skip":
        try:
            rule.skip = int(value or "")
        except ValueError:
            raise SecLangError(file, line, "bad skip count %r" % value)
    elif name == "skipafter":
        if not value:
            raise SecLangError(file, line, "skipAfter needs a marker")
        rule.skip_after = value
    elif name == "setvar":
        effects.append(compile_setvar(value or "", file, line))
    elif name == "setenv":
        effects.append(compile_setenv(value or "", file, line))
    elif name == "ctl":
        effects.append(compile_ctl(value or "", file, line))
    elif name in _NO_EFFECT:
        if name == "auditlog":
            rule.auditlog = True
        elif name == "noauditlog":
            rule.auditlog = False
    elif name in _REFUSED:
        raise SecLangError(file, line, "unsupported action %s" % name)
    else:
        raise SecLangError(file, line, "unknown action %s" % name)


def _severity(value: Optional[str], file: str, line: int) -> str:
    v = (value or "").strip().upper()
    if v.isdigit() and int(v) < len(SEVERITIES):
        return SEVERITIES[int(v)]
    if v in SEVERITIES:
        return v
    raise SecLangError(file, line, "bad severity %r" % value)


def to_int(value: bytes) -> int:
    """ModSecurity's lenient integer: leading blanks, optional sign, digits; else 0."""
    if len(value) < 19 and value.isdigit():  # (ASCII digits, short: the usual TX value)
        return int(value)
    s = value.strip()
    end = 0
    if s[:1] in (b"-", b"+"):
        end = 1
    while end < len(s) and 48 <= s[end] <= 57:
        end += 1
    try:
        return int(s[:end])
    except ValueError:
        return 0


class SetVar:
    """``setvar:tx.name=value`` / ``=+n`` / ``=-n`` / ``!tx.name`` / ``tx.name`` (sets 1)."""

    __slots__ = ("collection", "name", "op", "value", "text")
    kind = "setvar"

    def __init__(self, collection: str, name, op: str, value, text: str) -> None:
        self.collection = collection
        self.name = name
        self.op = op
        self.value = value
        self.text = text

    def apply(self, tx) -> None:
        name = self.name.expand(tx).decode("latin-1").lower()
        store = tx.collection_store(self.collection)
        if self.op == "!":
            store.pop(name, None)
            return
        value = self.value.expand(tx)
        if self.op == "=":
            store[name] = value
        elif self.op == "+":
            store[name] = b"%d" % (to_int(store.get(name, b"0")) + to_int(value))
        else:
            store[name] = b"%d" % (to_int(store.get(name, b"0")) - to_int(value))

    def __repr__(self) -> str:
        return "SetVar(%s)" % self.text


def compile_setvar(text: str, file: str, line: int) -> SetVar:
    t = text.strip()
    op = "="
    if t.startswith("!"):
        op, t = "!", t[1:].strip()
    name_part, sep, value = t.partition("=")
    if op == "=" and sep:
        if value.startswith("+"):
            op, value = "+", value[1:]
        elif value.startswith("-"):
            op, value = "-", value[1:]
    elif op == "=":
        value = "1"
    collection, dot, name = name_part.strip().partition(".")
    if not dot or not name:
        raise SecLangError(file, line, "bad setvar %r (expected collection.name=value)" % text)
    collection = collection.lower()
    if collection not in ("tx", "ip", "global", "session", "user", "resource"):
        raise SecLangError(file, line, "setvar on unknown collection %s" % collection)
    return SetVar(collection, compile_macro(name), op, compile_macro(value), text)


class SetEnv:
    """``setenv:name=value``: sets ENV:name for this transaction (the proxy may read it)."""

    __slots__ = ("name", "value", "text")
    kind = "setenv"

    def __init__(self, name: str, value, text: str) -> None:
        self.name = name
        self.value = value
        self.text = text

    def apply(self, tx) -> None:
        tx.collection_store("env")[self.name] = self.value.expand(tx)


def compile_setenv(text: str, file: str, line: int) -> SetEnv:
    name, _, value = text.partition("=")
    name = name.strip()
    if not name:
        raise SecLangError(file, line, "bad setenv %r" % text)
    if name.startswith("!"):
        name = name[1:]
    return SetEnv(name.lower(), compile_macro(value if _ else "1"), text)


__all__ = ["compile_actions", "Ctl", "SetVar", "SetEnv", "phase_of", "to_int"]

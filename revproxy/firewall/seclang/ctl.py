"""``ctl:`` actions: per-transaction configuration changes, compiled at load.

Supported: ``ruleEngine`` (On / Off / DetectionOnly), ``ruleRemoveById`` (ids and ranges),
``ruleRemoveByTag``, ``ruleRemoveByMsg``, ``ruleRemoveTargetById``, ``ruleRemoveTargetByTag``,
``ruleRemoveTargetByMsg`` (``ID;VAR:key``, the key may be ``/regex/``),
``requestBodyProcessor`` (URLENCODED, MULTIPART, JSON, XML), ``requestBodyAccess``,
``forceRequestBodyVariable``, ``responseBodyAccess``, ``requestBodyLimit``,
``responseBodyLimit``. Accepted with no effect: ``auditEngine``, ``auditLogParts``,
``debugLogLevel``, ``hashEngine``, ``hashEnforcement``. Anything else is refused at load.
"""

from __future__ import annotations

from typing import List, Tuple

from .api import SecLangError
from .parser import split_variables
from .rules import build_target

_NO_EFFECT = frozenset(("auditengine", "auditlogparts", "debugloglevel", "hashengine",
                        "hashenforcement"))
_PROCESSORS = frozenset(("URLENCODED", "MULTIPART", "JSON", "XML", "RAW"))
_TARGET_OPTIONS = frozenset(("ruleremovetargetbyid", "ruleremovetargetbytag",
                             "ruleremovetargetbymsg"))


def parse_id_ranges(text: str, file: str, line: int) -> List[Tuple[int, int]]:
    """``"1 5-9,12"`` -> [(1, 1), (5, 9), (12, 12)]."""
    out = []
    for part in text.replace(",", " ").split():
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise SecLangError(file, line, "bad rule id or range %r" % part)
        out.append((a, b) if a <= b else (b, a))
    if not out:
        raise SecLangError(file, line, "no rule id given")
    return out


class Ctl:
    """One compiled ``ctl:name=value``; ``apply(tx)`` changes only that transaction."""

    __slots__ = ("option", "value", "arg", "text", "_removal")
    kind = "ctl"

    def __init__(self, option: str, value: str, arg, text: str) -> None:
        self.option = option
        self.value = value
        self.arg = arg
        self.text = text
        # ruleRemoveTarget*: the (how, which, targets) of Evaluator.remove_target
        self._removal = (option[16:], arg[0], arg[1]) if option in _TARGET_OPTIONS \
            else None

    def apply(self, tx) -> None:
        log = tx._ctl_log
        if log is not None:  # a phase being recorded (listmemo.py)
            log.append(self)
        if self._removal is not None:  # (the CRS's most frequent ctl, 941010's)
            tx.remove_target(*self._removal)
            return
        o = self.option
        if o == "ruleengine":
            tx.engine_mode = self.arg
        elif o == "ruleremovebyid":
            tx.remove_ids(self.arg)
        elif o == "ruleremovebytag":
            tx.remove_tag(self.arg)
        elif o == "ruleremovebymsg":
            tx.remove_msg(self.arg)
        elif o == "requestbodyprocessor":
            tx.body_processor = self.arg
        elif o == "requestbodyaccess":
            tx.request_body_access = self.arg
        elif o == "forcerequestbodyvariable":
            tx.force_body_variable = self.arg
        elif o == "responsebodyaccess":
            tx.response_body_access = self.arg
        elif o == "requestbodylimit":
            tx.request_body_limit = self.arg
        elif o == "responsebodylimit":
            tx.response_body_limit = self.arg

    def __repr__(self) -> str:
        return "Ctl(%s)" % self.text


def _on_off(value: str, file: str, line: int, option: str) -> bool:
    v = value.strip().lower()
    if v in ("on", "true", "1"):
        return True
    if v in ("off", "false", "0"):
        return False
    raise SecLangError(file, line, "ctl:%s expects On or Off, got %r" % (option, value))


def compile_ctl(text: str, file: str, line: int) -> Ctl:
    name, eq, value = text.partition("=")
    option = name.strip().lower()
    value = value.strip()
    if not eq and option not in _NO_EFFECT:
        raise SecLangError(file, line, "bad ctl %r (expected option=value)" % text)
    arg: object = value
    if option == "ruleengine":
        modes = {"on": "On", "off": "Off", "detectiononly": "DetectionOnly"}
        if value.lower() not in modes:
            raise SecLangError(file, line, "ctl:ruleEngine expects On, Off or DetectionOnly")
        arg = modes[value.lower()]
    elif option == "ruleremovebyid":
        arg = parse_id_ranges(value, file, line)
    elif option in ("ruleremovebytag", "ruleremovebymsg"):
        arg = value
    elif option in ("ruleremovetargetbyid", "ruleremovetargetbytag", "ruleremovetargetbymsg"):
        which, semi, target = value.partition(";")
        if not semi or not target.strip():
            raise SecLangError(file, line, "ctl:%s expects ID;VARIABLE[:key]" % name.strip())
        specs = split_variables(target.strip(), file, line)
        targets = [build_target(s, file, line) for s in specs]
        if option == "ruleremovetargetbyid":
            arg = (parse_id_ranges(which, file, line), targets)
        else:
            arg = (which.strip(), targets)
    elif option == "requestbodyprocessor":
        arg = value.upper()
        if arg not in _PROCESSORS:
            raise SecLangError(file, line, "unknown request body processor %s" % value)
    elif option in ("requestbodyaccess", "forcerequestbodyvariable", "responsebodyaccess"):
        arg = _on_off(value, file, line, name.strip())
    elif option in ("requestbodylimit", "responsebodylimit"):
        try:
            arg = int(value)
        except ValueError:
            raise SecLangError(file, line, "ctl:%s expects a number of bytes" % name.strip())
    elif option not in _NO_EFFECT:
        raise SecLangError(file, line, "unsupported ctl option %s" % name.strip())
    return Ctl(option, value, arg, text)

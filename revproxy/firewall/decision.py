"""One request's firewall outcome: what the client gets, the decision log line, the note for
the access log. Pure: built from the engine's ``MatchRecord`` list and the hook's findings.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

from revproxy.firewall.seclang.api import MatchRecord
from revproxy.pipeline.hooks import Answer

BLOCKED, DETECTED, LOGGED = "blocked", "detected", "logged"
MAX_LOGGED_MATCHES = 20  # matches written in one decision line (the rest are counted)


class Outcome(NamedTuple):
    """``action``: "blocked" (the client got ``status``), "detected" (would have been
    blocked: detect mode), "logged" (rules matched, nothing disruptive); ``rule`` the rule
    that decided (a SecLang id, "python:NAME", or "limit" for a body over the limit);
    ``reason`` a short text (the deciding rule's message)."""

    action: str
    status: int
    rule: object
    reason: str


def python_match(name: str, reason: str, points: int, disruptive: bool) -> MatchRecord:
    """A Python rule's verdict in the shape of an engine match (for the log and counters)."""
    return MatchRecord(
        rule_id="python:%s" % name, phase=2, msg=reason.encode("utf-8", "replace"),
        logdata=b"score=%d" % points if points else b"", severity="", tags=(),
        variable="", value=b"", disruptive=disruptive,
    )


def denial(status: int, request_id: bytes, close: bool = False, reason: str = "") -> Answer:
    """What a denied client gets: the status and the request id, never rule internals."""
    body = b"Request refused (request id %s)\n" % request_id
    return Answer(status, headers=((b"content-type", b"text/plain; charset=utf-8"),),
                  body=body, reason="firewall: %s" % reason if reason else "firewall",
                  close=close)


def _clip(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", "backslashreplace")
    return text + "..." if len(data) > limit else text


def match_fields(matches: Sequence[MatchRecord], data_max: int) -> List[dict]:
    """The matches as plain data for the log: id, msg, variable, data (truncated)."""
    out = []
    for match in matches[:MAX_LOGGED_MATCHES]:
        out.append({
            "id": match.rule_id,
            "msg": _clip(match.msg, 200),
            "variable": match.variable,
            "data": _clip(match.value, data_max),
            "logdata": _clip(match.logdata, data_max),
        })
    return out


def log_text(request_id: bytes, outcome: Optional[Outcome], matches: Sequence[MatchRecord],
             score: int, data_max: int) -> str:
    """The decision line: ``rid=... action=... status=... rule=... score=N`` then each match as
    ``id [variable="data"] "msg"``, data truncated to ``data_max`` bytes."""
    action = outcome.action if outcome is not None else LOGGED
    parts = ["rid=%s action=%s" % (request_id.decode("ascii", "replace"), action)]
    if outcome is not None:
        parts.append("status=%d rule=%s" % (outcome.status, outcome.rule))
    parts.append("score=%d" % score)
    for item in match_fields(matches, data_max):
        where = ' %s="%s"' % (item["variable"], item["data"]) if item["variable"] else ""
        parts.append('| %s%s "%s"' % (item["id"], where, item["msg"]))
    if len(matches) > MAX_LOGGED_MATCHES:
        parts.append("| (%d more)" % (len(matches) - MAX_LOGGED_MATCHES))
    return " ".join(parts)


def note_text(outcome: Optional[Outcome], matches: Sequence[MatchRecord]) -> str:
    """The ``firewall`` note for the access log: ``blocked:942100,949110`` (action, then
    the ids that matched, at most ten)."""
    action = outcome.action if outcome is not None else LOGGED
    ids = []
    for match in matches:
        if match.rule_id not in ids:
            ids.append(match.rule_id)
    text = ",".join(str(i) for i in ids[:10])
    return "%s:%s" % (action, text) if text else action

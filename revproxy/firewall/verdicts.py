"""What a Python firewall rule (``IFirewallRule.evaluate``) returns.

``allow()`` (or None): no objection; ``deny(status, reason)``: answer ``status``;
``score(n, reason)``: add ``n`` to the request's anomaly score. Verdicts are small immutable
values, so a rule can return module-level constants.
"""

from __future__ import annotations

from typing import NamedTuple


class Verdict(NamedTuple):
    """``kind`` is "allow", "deny" or "score"; ``status`` the HTTP status of a deny;
    ``points`` a score's points; ``reason`` a short text for the decision log."""

    kind: str
    status: int = 0
    points: int = 0
    reason: str = ""


ALLOW = Verdict("allow")


def allow() -> Verdict:
    """No objection: the request goes on to the other rules."""
    return ALLOW


def deny(status: int = 403, reason: str = "") -> Verdict:
    """Refuse the request with ``status`` (400-599; the client never sees ``reason``)."""
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError("a deny status must be 400-599, not %r" % (status,))
    return Verdict("deny", status=status, reason=reason)


def score(points: int, reason: str = "") -> Verdict:
    """Add ``points`` (an int >= 0) to the request's anomaly score."""
    if not isinstance(points, int) or points < 0:
        raise ValueError("a score must be an integer >= 0, not %r" % (points,))
    return Verdict("score", points=points, reason=reason)


def checked(value) -> Verdict:
    """``value`` as a Verdict (None is allow); TypeError for anything else."""
    if value is None:
        return ALLOW
    if isinstance(value, Verdict) and value.kind in ("allow", "deny", "score"):
        return value
    raise TypeError("a firewall rule returned %r: expected allow(), deny(...), score(...) "
                    "or None" % (value,))

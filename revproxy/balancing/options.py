"""Checks shared by the built-in policies' option parsing: readable ValueErrors, nothing else."""

from __future__ import annotations


def check_options(policy, options, allowed):
    """``options`` (a mapping, or None) as a dict; ValueError naming any key not in ``allowed``."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValueError(
            "balance %r: unknown option(s) %s (known: %s)"
            % (policy, ", ".join(repr(k) for k in unknown), known)
        )
    return options


def positive_number(policy, key, value):
    """``value`` as a float > 0 (bools refused); ValueError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            "balance %r: option %r must be a number > 0, not %r" % (policy, key, value)
        )
    return float(value)


def positive_int(policy, key, value, maximum):
    """``value`` as an int in 1..maximum (bools refused); ValueError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(
            "balance %r: option %r must be an integer from 1 to %d, not %r"
            % (policy, key, maximum, value)
        )
    return value

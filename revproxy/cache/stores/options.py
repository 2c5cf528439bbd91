"""Reading a store's ``store_options``: readable ValueErrors, nothing else."""

from __future__ import annotations

import time

from revproxy.config.values import SIZE_EXPECTED, parse_size

MIB = 1024 * 1024


class WallClock:
    """A clock with ``seconds()`` reading the system time: the default when none is given
    (the factories pass the reactor, tests a ``task.Clock``)."""

    @staticmethod
    def seconds() -> float:
        return time.time()


def check_options(store, options, allowed):
    """``options`` (a mapping, or None) as a dict; ValueError naming any key not in ``allowed``."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            "cache store %r: unknown option(s) %s (known: %s)"
            % (store, ", ".join(repr(k) for k in unknown), ", ".join(sorted(allowed)) or "none")
        )
    return options


def size_option(store, options, key, default):
    """``options[key]`` as a size in bytes > 0 ("64m" style strings allowed), or ``default``."""
    value = options.get(key, default)
    try:
        size = parse_size(value)
    except ValueError:
        raise ValueError("cache store %r: option %r: %s, not %r"
                         % (store, key, SIZE_EXPECTED, value))
    if size <= 0:
        raise ValueError("cache store %r: option %r must be > 0, not %r" % (store, key, value))
    return size


def bool_option(store, options, key, default):
    """``options[key]`` as a bool (true/false only), or ``default``."""
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError("cache store %r: option %r must be true or false, not %r"
                         % (store, key, value))
    return value


def str_option(store, options, key):
    """``options[key]``, a required non-empty string."""
    value = options.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError("cache store %r: option %r is required (a non-empty string), not %r"
                         % (store, key, value))
    return value


def check_bounds(store, max_bytes, max_object):
    """ValueError unless both bounds are > 0 and one object fits in the store."""
    if max_bytes <= 0 or max_object <= 0:
        raise ValueError("cache store %r: max_bytes and max_object must be > 0" % (store,))
    if max_object > max_bytes:
        raise ValueError("cache store %r: max_object (%d) is larger than max_bytes (%d)"
                         % (store, max_object, max_bytes))


def int_option(store, options, key, default, low, high):
    """``options[key]`` as an integer in [low, high], or ``default``."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError("cache store %r: option %r must be an integer from %d to %d, not %r"
                         % (store, key, low, high, value))
    return value


def size_or_zero_option(store, options, key, default):
    """``options[key]`` as a size in bytes, 0 allowed (meaning "off"), or ``default``."""
    value = options.get(key, default)
    if value in (0, "0"):
        return 0
    return size_option(store, options, key, default)

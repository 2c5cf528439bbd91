"""HTTP-date (RFC 9110 §5.6.7): parse the three formats, format the preferred one.

Parsing is strict (HTTP-date is case-sensitive and fixed-width): anything else gives ``None``,
which each caller maps to its rule (an invalid ``Expires`` means "already expired", an invalid
``If-Modified-Since`` is ignored...). The weekday must be a valid name but is not checked
against the date (the RFC does not ask for it, and the date fields carry the meaning).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Dict, Optional, Union

_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_DAYS_LONG = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NUMBER = {name: index + 1 for index, name in enumerate(_MONTHS)}
_MON = "|".join(_MONTHS)
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"

_IMF = re.compile(r"(?:%s), ([0-9]{2}) (%s) ([0-9]{4}) %s GMT\Z" % (_DAYS, _MON, _TIME))
_RFC850 = re.compile(r"(?:%s), ([0-9]{2})-(%s)-([0-9]{2}) %s GMT\Z" % (_DAYS_LONG, _MON, _TIME))
_ASCTIME = re.compile(r"(?:%s) (%s) ([0-9]{2}| [0-9]) %s ([0-9]{4})\Z" % (_DAYS, _MON, _TIME))

_FIFTY_YEARS = 50 * 365.2425 * 86400.0
_MEMO: Dict[bytes, Optional[float]] = {}  # IMF-fixdate / asctime results: they never change
_MEMO_MAX = 2048


def parse_http_date(value: Union[bytes, str, None], now: Optional[float] = None) -> Optional[float]:
    """Epoch seconds of an IMF-fixdate, rfc850 or asctime date; ``None`` if invalid.

    An rfc850 two-digit year is resolved with ``now`` as RFC 9110 §5.6.7 asks (a year more
    than 50 years in the future means the century before); without ``now``, 70-99 are 19xx
    and 00-69 are 20xx. Never raises.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if value in _MEMO:
        return _MEMO[value]
    text = value.decode("latin-1").strip(" \t")
    match = _IMF.match(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        return _remember(value, _epoch(int(year), month, day, hour, minute, second))
    match = _ASCTIME.match(text)
    if match is not None:
        month, day, hour, minute, second, year = match.groups()
        return _remember(value, _epoch(int(year), month, day, hour, minute, second))
    match = _RFC850.match(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        full = _full_year(int(year), now)
        result = _epoch(full, month, day, hour, minute, second)
        if now is not None and result is not None and result > now + _FIFTY_YEARS:
            # "appears to be more than 50 years in the future": the instant decides, not
            # the calendar year alone (RFC 9110 §5.6.7).
            result = _epoch(full - 100, month, day, hour, minute, second)
        return result
    return _remember(value, None)


def format_http_date(when: float) -> bytes:
    """``when`` (epoch seconds) as an IMF-fixdate, e.g. ``b"Sun, 06 Nov 1994 08:49:37 GMT"``."""
    t = time.gmtime(when)
    # not strftime: %a / %b follow the process locale
    return ("%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)).encode("ascii")


def _remember(key: bytes, result: Optional[float]) -> Optional[float]:
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = result
    return result


def _full_year(two_digits: int, now: Optional[float]) -> int:
    if now is None:
        return two_digits + (1900 if two_digits >= 70 else 2000)
    try:
        this_year = time.gmtime(now).tm_year
    except (OverflowError, ValueError, OSError):
        return two_digits + (1900 if two_digits >= 70 else 2000)
    # the year with these last two digits in (this_year - 50, this_year + 50]
    year = this_year - this_year % 100 + two_digits
    if year > this_year + 50:
        year -= 100
    elif year <= this_year - 50:
        year += 100
    return year


def _epoch(year: int, month: str, day: str, hour: str, minute: str, second: str) -> Optional[float]:
    mon = _MONTH_NUMBER[month]
    d, h, m, s = int(day), int(hour), int(minute), int(second)
    if year < 1 or h > 23 or m > 59 or s > 60:  # 60: a leap second (RFC 5322 §3.3)
        return None
    if not 1 <= d <= calendar.monthrange(year, mon)[1]:
        return None
    return float(calendar.timegm((year, mon, d, h, m, s, 0, 0, 0)))

"""``ConfigError``: one message naming the file, the key, the bad value and what was expected."""

from __future__ import annotations

import json
from typing import Any

MAX_VALUE_CHARS = 60

# Marks "no value to show" (a missing key, a whole-table problem, a TOML syntax error).
NO_VALUE = object()


def toml_repr(value: Any) -> str:
    """Render ``value`` the way it would be written in TOML, cut to ``MAX_VALUE_CHARS``."""
    text = _render(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join("%s = %s" % (key, _render(item)) for key, item in value.items())
        return "{" + items + "}"
    return repr(value)


class ConfigError(Exception):
    """A configuration problem, located precisely enough to fix without guessing.

    ``str()`` reads ``<source>: <key> = <value>: <explanation>``, e.g.
    ``conf/x.toml: [pools.api] connect_timeout = "abc": expected a duration ...``.
    ``key`` carries its table path; ``value`` is ``NO_VALUE`` when there is none to show.
    """

    def __init__(self, source: str, key: str, value: Any, message: str) -> None:
        self.source = source
        self.key = key
        self.value = value
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.key
        if self.value is not NO_VALUE:
            where = "%s = %s" % (where, toml_repr(self.value))
        if where:
            return "%s: %s: %s" % (self.source, where, self.message)
        return "%s: %s" % (self.source, self.message)

    def __str__(self) -> str:
        return self._format()

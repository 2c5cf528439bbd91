"""Reading one TOML table: typed getters that turn every problem into a located ``ConfigError``.

A ``Parser`` is a callable ``raw value -> normalised value`` that raises ``ValueError`` with the
explanation; ``Table.get`` adds the file, the table path and the key. Parsers for lists raise
``ItemError`` so the message points at the offending element (``listen #2``).
"""

from __future__ import annotations

import json
import math
import re

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.config.values import parse_duration, parse_size

Parser = Callable[[Any], Any]


class ItemError(ValueError):
    """Element ``index`` (0-based) of a list is bad; ``message`` says why."""

    def __init__(self, index: int, item: Any, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.item = item
        self.message = message


class Table:
    """One table of the document: its data, the file it came from and its label for errors.

    ``label`` is how the table is written in errors, e.g. ``[pools.api]``; "" for the top level.
    """

    def __init__(self, data: Mapping[str, Any], source: str, label: str) -> None:
        self.data = data
        self.source = source
        self.label = label

    def where(self, key: str) -> str:
        """The key with its table path, e.g. ``[server] listen``."""
        if not self.label:
            return key
        return "%s %s" % (self.label, key) if key else self.label

    def error(self, key: str, value: Any, message: str) -> ConfigError:
        return ConfigError(self.source, self.where(key), value, message)

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse any key not in ``known``, listing the known ones."""
        known = list(known)
        for key, value in self.data.items():
            if key not in known:
                raise self.error(key, value, "unknown key; known keys: " + ", ".join(known))

    def get(self, key: str, parse: Parser, default: Any = None) -> Any:
        """``parse(data[key])``, or ``default`` when the key is absent."""
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            return parse(value)
        except ItemError as exc:
            raise self.error("%s #%d" % (key, exc.index + 1), exc.item, exc.message) from None
        except ValueError as exc:
            raise self.error(key, value, str(exc)) from None

    def require(self, key: str, parse: Parser, expected: str) -> Any:
        """Like ``get`` but the key must be present; ``expected`` describes it when missing."""
        if key not in self.data:
            raise self.error(key, NO_VALUE, "missing; " + expected)
        return self.get(key, parse)

    def sub_table(self, key: str, label: str) -> "Table":
        """The table under ``key`` (an empty one when absent)."""
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, value, "expected a table %s" % label)
        return Table(value, self.source, label)

    def build(
        self,
        cls: type,
        fields: Dict[str, Parser],
        extra: Optional[Dict[str, Any]] = None,
        also_known: Sequence[str] = (),
    ) -> Any:
        """``cls(**extra, **parsed)`` for the ``fields`` present; absent ones keep the default.

        ``also_known`` names keys the caller reads itself (they pass the unknown-key check).
        """
        self.check_keys(list(fields) + list(also_known))
        kwargs = dict(extra or {})
        for key, parse in fields.items():
            if key in self.data:
                kwargs[key] = self.get(key, parse)
        return cls(**kwargs)


def table_key(name: str) -> str:
    """``name`` as written in a TOML table header (quoted unless it is a bare key)."""
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else json.dumps(name)


OPTION_VALUE_EXPECTED = "expected a string, an integer, a finite number or a boolean"


def _plain_option(value: Any) -> bool:
    """A TOML scalar a plugin can take as an option (kept hashable: the config is frozen)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))  # bool is an int


def plain_options(table: "Table", key: str, expected: str = "expected an inline table of options"
                  ) -> Tuple[Tuple[str, Any], ...]:
    """A plugin's options table as (key, value) pairs sorted by key; each plugin checks its own."""
    raw = table.data.get(key, {})
    if not isinstance(raw, dict):
        raise table.error(key, raw, expected)
    for name, value in raw.items():
        if not _plain_option(value):
            raise table.error("%s.%s" % (key, table_key(name)), value, OPTION_VALUE_EXPECTED)
    return tuple(sorted(raw.items(), key=lambda item: item[0]))


# --- parser factories ------------------------------------------------------------------------


def text(allow_empty: bool = True) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        if not allow_empty and not value:
            raise ValueError("expected a non-empty string")
        return value

    return parse


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def count(minimum: int, maximum: Optional[int] = None) -> Parser:
    """An integer in [minimum, maximum]."""

    def parse(value: Any) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        if ok and (maximum is None or value <= maximum):
            return value
        if maximum is None:
            raise ValueError("expected an integer >= %d" % minimum)
        raise ValueError("expected an integer from %d to %d" % (minimum, maximum))

    return parse


def size(minimum: int) -> Parser:
    """A size in bytes (see ``parse_size``) of at least ``minimum``."""

    def parse(value: Any) -> int:
        result = parse_size(value)
        if result < minimum:
            raise ValueError("expected a size of at least %d bytes" % minimum)
        return result

    return parse


def duration(value: Any) -> float:
    """A duration in seconds (see ``parse_duration``) greater than zero."""
    result = parse_duration(value)
    if result <= 0:
        raise ValueError("expected a duration greater than 0 seconds")
    return result


def duration_or_off(value: Any) -> float:
    """A duration in seconds of 0 or more; 0 turns the feature off."""
    result = parse_duration(value)
    if result < 0:
        raise ValueError("expected a duration of 0 seconds or more (0 = off)")
    return result


def empty_or(parse: Parser, what: str) -> Parser:
    """``""`` (the feature is off) or a value ``parse`` accepts, described by ``what``."""

    def parse_optional(value: Any) -> Any:
        if isinstance(value, str) and value == "":
            return value
        try:
            return parse(value)
        except ValueError:
            raise ValueError('expected "" (off) or %s' % what) from None

    return parse_optional


def one_of(choices: Sequence[str]) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError("expected one of: " + ", ".join(choices))
        return value

    return parse


def list_of(
    item: Parser, min_items: int = 0, single: bool = False, unique: bool = False
) -> Parser:
    """A tuple of parsed items; with ``single`` a lone value stands for a one-item list;
    with ``unique`` an item equal (once parsed) to an earlier one is refused."""

    def parse(value: Any) -> Tuple[Any, ...]:
        if single and not isinstance(value, list):
            value = [value]
        if not isinstance(value, list):
            raise ValueError("expected an array")
        if len(value) < min_items:
            if min_items == 1:
                raise ValueError("expected a non-empty array")
            raise ValueError("expected an array of at least %d items" % min_items)
        result: List[Any] = []
        for index, element in enumerate(value):
            try:
                parsed = item(element)
            except ValueError as exc:
                raise ItemError(index, element, str(exc)) from None
            if unique and parsed in result:
                raise ItemError(
                    index, element, "expected each entry once; #%d is the same"
                    % (result.index(parsed) + 1),
                )
            result.append(parsed)
        return tuple(result)

    return parse

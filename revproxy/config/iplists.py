"""The ``[[ip_lists]]`` array: allow and deny lists of client addresses, and their scope.

Inline ``addresses`` are checked here; ``files`` are only located here (made absolute,
relative to the config file's directory) and read when the runtime is built, at start-up and
on every reload. Whether ``listeners`` and ``routes`` name existing ones is checked then too,
after the command-line overrides (``--listen``) have been applied.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

from revproxy.config.errors import NO_VALUE
from revproxy.config.model import IPList
from revproxy.config.reader import Table, list_of, one_of, text
from revproxy.protection.cidr import parse_entry

IP_LIST_KEYS = ("name", "action", "addresses", "files", "listeners", "routes")
ACTIONS = ("allow", "deny")


def ip_entry(value: Any) -> str:
    """An address or CIDR block (see ``revproxy.protection.cidr.parse_entry``), as written."""
    if not isinstance(value, str):
        raise ValueError("expected a string: an address or CIDR block")
    parse_entry(value)
    return value


def list_file(source: str):
    """A parser of file paths: absolute, relative ones taken from the config's directory
    (the current directory for the embedded config and the command line)."""
    base = os.path.dirname(os.path.abspath(source)) if not source.startswith("<") else ""

    def parse(value: Any) -> str:
        path = text(allow_empty=False)(value)
        return os.path.abspath(os.path.join(base, path)) if base else os.path.abspath(path)

    return parse


def parse_ip_lists(root: Table) -> Tuple[IPList, ...]:
    """Each ``[[ip_lists]]`` table: ``name`` (unique), ``action`` (allow | deny), at least
    one of ``addresses`` and ``files``, and the scope: ``listeners`` and/or ``routes``."""
    raw: Any = root.data.get("ip_lists", [])
    if not isinstance(raw, list):
        raise root.error("ip_lists", raw,
                         'expected an array of tables: [[ip_lists]] name = "..." action = "deny"')
    names = set()
    lists = []
    for index, item in enumerate(raw):
        label = "[[ip_lists]] #%d" % (index + 1)
        if not isinstance(item, dict):
            raise root.error("ip_lists #%d" % (index + 1), item, "expected a table")
        table = Table(item, root.source, label)
        table.check_keys(IP_LIST_KEYS)
        name = table.require("name", text(allow_empty=False), "a name for the list (in logs)")
        if name in names:
            raise table.error("name", name, "expected a name no other [[ip_lists]] uses")
        names.add(name)
        table.label = "%s (%s)" % (label, name)
        action = table.require("action", one_of(ACTIONS), '"allow" or "deny"')
        if "addresses" not in item and "files" not in item:
            raise table.error("addresses", NO_VALUE,
                              "missing; expected addresses = [...] and/or files = [...]")
        lists.append(IPList(
            name=name, action=action,
            addresses=table.get("addresses", list_of(ip_entry), ()),
            files=table.get("files", list_of(list_file(root.source), unique=True), ()),
            listeners=table.get("listeners", list_of(text(allow_empty=False), unique=True), ()),
            routes=table.get("routes", list_of(text(allow_empty=False), unique=True), ()),
        ))
    return tuple(lists)

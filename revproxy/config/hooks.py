"""The ``[[hooks]]`` array: pipeline hook plugins, in the order they run."""

from __future__ import annotations

from typing import Any, Tuple

from revproxy.config.model import HookEntry
from revproxy.config.reader import Table, plain_options, text

HOOK_KEYS = ("plugin", "options")


def parse_hooks(root: Table) -> Tuple[HookEntry, ...]:
    """Each ``[[hooks]]`` table: ``plugin`` (a hook plugin's name) and ``options`` (an inline
    table handed to it). Whether the name exists is checked with the plugin registry
    (``check_hooks``), since the file alone cannot know which plugins are installed."""
    raw: Any = root.data.get("hooks", [])
    if not isinstance(raw, list):
        raise root.error("hooks", raw, "expected an array of tables: [[hooks]] plugin = \"name\"")
    entries = []
    for index, item in enumerate(raw):
        label = "[[hooks]] #%d" % (index + 1)
        if not isinstance(item, dict):
            raise root.error("hooks #%d" % (index + 1), item, "expected a table")
        table = Table(item, root.source, label)
        table.check_keys(HOOK_KEYS)
        plugin = table.require("plugin", text(allow_empty=False), "the name of a hook plugin")
        entries.append(HookEntry(plugin=plugin, options=plain_options(table, "options")))
    return tuple(entries)

"""The ``[firewall]`` section: the SecLang engine with the CRS, per-rule modes, Python rules.

Every bad value raises ``ConfigError`` naming the file, ``[firewall] <key>`` (or
``[[firewall.modes]] #N <key>``, ``[[firewall.python]] #N <key>``) and what was expected.
Rule files are only named here; they are read (and their errors reported with file and line)
when the runtime is built (``revproxy.firewall.build``).

Without a ``[firewall]`` section the firewall is off; the embedded default config turns it on
with ``crs = "auto"`` (Debian's modsecurity-crs when it is installed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from revproxy.config.errors import ConfigError, NO_VALUE
from revproxy.config.reader import (
    Table, count, list_of, one_of, plain_options, size, text,
)

MODES = ("on", "detect", "off")
REQUEST_BODY_LIMIT = 13107200  # ModSecurity's modsecurity.conf-recommended
REQUEST_BODY_NO_FILES_LIMIT = 131072
RULE_MODES = ("off", "detect", "enforce")
ORDERS = ("before", "after")
RESPONSE_TYPES = ("text/plain", "text/html", "text/xml")
KEYS = (
    "mode", "crs", "paranoia_level", "inbound_threshold", "outbound_threshold", "rules",
    "exclusions_before", "exclusions_after", "status", "request_body_limit",
    "request_body_limit_action", "request_body_no_files_limit", "response_body_access",
    "response_body_limit", "response_body_types", "log_matched_data_max", "samples_per_rule",
    "modes", "python", "routes",
)
MODE_KEYS = ("ids", "tags", "mode")
PYTHON_KEYS = ("plugin", "options", "order")
CRS_EXPECTED = ('expected "auto" (Debian\'s modsecurity-crs), "" (no CRS) or the absolute path '
                "of a CRS directory")
FLAG_EXPECTED = ('expected "off", or [detect:]crs:DIR[:pl=N] (DIR a CRS release directory or '
                 '"auto"), e.g. crs:/opt/coreruleset:pl=2')


@dataclass(frozen=True)
class RuleMode:
    """One ``[[firewall.modes]]`` entry: rule ids and/or tags and the mode they get."""

    mode: str  # "off" | "detect" | "enforce"
    ids: Tuple[int, ...] = ()
    tags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PythonRule:
    """One ``[[firewall.python]]`` entry: an ``IFirewallRuleFactory`` plugin by name."""

    plugin: str
    options: Tuple[Tuple[str, object], ...] = ()
    order: str = "before"  # "before" | "after" the SecLang phase-2 rules


@dataclass(frozen=True)
class FirewallSettings:
    """``[firewall]``: see docs/firewall.md for what each key does."""

    mode: str = "off"  # "on" (blocking) | "detect" (log only) | "off"
    crs: str = ""  # "" = no CRS, "auto" = Debian's if installed, else a CRS directory
    paranoia_level: int = 1  # 1-4
    inbound_threshold: int = 5  # anomaly score that blocks a request (CRS default 5)
    outbound_threshold: int = 4  # anomaly score that blocks a response (CRS default 4)
    rules: Tuple[str, ...] = ()  # extra SecLang files, after the CRS
    exclusions_before: Tuple[str, ...] = ()  # loaded before the CRS rules (like REQUEST-900)
    exclusions_after: Tuple[str, ...] = ()  # loaded after them (like RESPONSE-999)
    status: int = 403  # what a denied client gets (a rule's own status: deny,status:N wins)
    # ModSecurity's recommended limits: SecRequestBodyLimit 13107200 (the whole body,
    # files included) and SecRequestBodyNoFilesLimit 131072 (a body without files: the
    # whole of a non-multipart body, the non-file parts of a multipart one)
    request_body_limit: int = REQUEST_BODY_LIMIT  # body bytes the engine inspects
    request_body_limit_action: str = "reject"  # beyond a limit: "reject" (413) | "partial"
    request_body_no_files_limit: int = REQUEST_BODY_NO_FILES_LIMIT
    response_body_access: bool = False  # inspect response bodies (phase 4)
    response_body_limit: int = 512 * 1024  # prefix of a response body inspected
    response_body_types: Tuple[str, ...] = RESPONSE_TYPES  # media types inspected
    log_matched_data_max: int = 128  # matched data in the decision log, in bytes
    samples_per_rule: int = 5  # last matched samples kept per rule (admin status)
    modes: Tuple[RuleMode, ...] = ()
    python: Tuple[PythonRule, ...] = ()
    routes: Tuple[Tuple[str, str], ...] = ()  # route name -> "on" | "detect" | "off"

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def _absolute_file(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected the path of a SecLang rule file")
    if not os.path.isabs(value):
        raise ValueError("expected an absolute path (the config may be read from anywhere)")
    return value


def _crs(value: Any) -> str:
    if isinstance(value, str) and (value in ("", "auto") or os.path.isabs(value)):
        return value
    raise ValueError(CRS_EXPECTED)


def _rule_id(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 31:
        return value
    raise ValueError("expected a rule id (a positive integer)")


def _status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    raise ValueError("expected an HTTP status from 400 to 599")


def _media_type(value: Any) -> str:
    if isinstance(value, str) and value.count("/") == 1 and " " not in value.strip():
        return value.strip().lower()
    raise ValueError('expected a media type such as "text/html"')


def parse_firewall(root: Table, route_names: Tuple[str, ...] = ()) -> FirewallSettings:
    """The ``[firewall]`` table (an absent one: the firewall is off). ``route_names`` are the
    config's routes (``routes`` may only name those)."""
    if "firewall" not in root.data:
        return FirewallSettings()
    table = root.sub_table("firewall", "[firewall]")
    table.check_keys(KEYS)
    files = list_of(_absolute_file, single=True, unique=True)
    settings = FirewallSettings(
        mode=table.get("mode", one_of(MODES), "on"),
        crs=table.get("crs", _crs, ""),
        paranoia_level=table.get("paranoia_level", count(1, 4), 1),
        inbound_threshold=table.get("inbound_threshold", count(1, 10000), 5),
        outbound_threshold=table.get("outbound_threshold", count(1, 10000), 4),
        rules=table.get("rules", files, ()),
        exclusions_before=table.get("exclusions_before", files, ()),
        exclusions_after=table.get("exclusions_after", files, ()),
        status=table.get("status", _status, 403),
        request_body_limit=table.get("request_body_limit", size(1), REQUEST_BODY_LIMIT),
        request_body_limit_action=table.get("request_body_limit_action",
                                            one_of(("reject", "partial")), "reject"),
        request_body_no_files_limit=table.get("request_body_no_files_limit", size(1),
                                              REQUEST_BODY_NO_FILES_LIMIT),
        response_body_access=table.get("response_body_access", _boolean, False),
        response_body_limit=table.get("response_body_limit", size(1), 512 * 1024),
        response_body_types=table.get("response_body_types", list_of(_media_type, unique=True),
                                      RESPONSE_TYPES),
        log_matched_data_max=table.get("log_matched_data_max", count(0, 4096), 128),
        samples_per_rule=table.get("samples_per_rule", count(0, 100), 5),
        modes=_modes(table),
        python=_python(table),
        routes=_routes(table, route_names),
    )
    if settings.enabled and not (settings.crs or settings.rules or settings.python):
        raise table.error("mode", settings.mode, 'expected "off" when no rules are configured '
                          '(give crs = "auto" or a CRS directory, rules = [...] or '
                          "[[firewall.python]])")
    return settings


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _array_of_tables(table: Table, key: str, example: str):
    raw = table.data.get(key, [])
    if not isinstance(raw, list):
        raise table.error(key, raw, "expected an array of tables: %s" % example)
    for index, item in enumerate(raw):
        label = "[[firewall.%s]] #%d" % (key, index + 1)
        if not isinstance(item, dict):
            raise table.error("%s #%d" % (key, index + 1), item, "expected a table")
        yield Table(item, table.source, label)


def _modes(table: Table) -> Tuple[RuleMode, ...]:
    entries = []
    for entry in _array_of_tables(table, "modes", '[[firewall.modes]] ids = [942100], '
                                  'mode = "detect"'):
        entry.check_keys(MODE_KEYS)
        mode = entry.require("mode", one_of(RULE_MODES), '"off", "detect" or "enforce"')
        ids = entry.get("ids", list_of(_rule_id, single=True, unique=True), ())
        tags = entry.get("tags", list_of(text(allow_empty=False), single=True, unique=True), ())
        if not ids and not tags:
            raise entry.error("ids", NO_VALUE, "missing; expected ids = [...] or tags = [...]")
        entries.append(RuleMode(mode=mode, ids=ids, tags=tags))
    return tuple(entries)


def _python(table: Table) -> Tuple[PythonRule, ...]:
    entries = []
    for entry in _array_of_tables(table, "python", '[[firewall.python]] plugin = "name"'):
        entry.check_keys(PYTHON_KEYS)
        plugin = entry.require("plugin", text(allow_empty=False),
                               "the name of a firewall rule plugin")
        entries.append(PythonRule(plugin=plugin, options=plain_options(entry, "options"),
                                  order=entry.get("order", one_of(ORDERS), "before")))
    return tuple(entries)


def _routes(table: Table, route_names: Tuple[str, ...]) -> Tuple[Tuple[str, str], ...]:
    raw = table.data.get("routes", {})
    if not isinstance(raw, dict):
        raise table.error("routes", raw, 'expected an inline table, e.g. {api = "detect"}')
    result = []
    for name, mode in sorted(raw.items()):
        if route_names and name not in route_names:
            raise table.error("routes.%s" % name, mode, "expected the name of a route: "
                              + ", ".join(route_names))
        if mode not in MODES:
            raise table.error("routes.%s" % name, mode, "expected one of: " + ", ".join(MODES))
        result.append((name, mode))
    return tuple(result)


def parse_firewall_flag(spec: str, source: str = "<command line>") -> FirewallSettings:
    """``--firewall off | [detect:]crs:DIR[:pl=N]`` -> the settings it stands for."""
    if spec == "off":
        return FirewallSettings(mode="off")
    mode, rest = "on", spec
    if rest.startswith("detect:"):
        mode, rest = "detect", rest[len("detect:"):]
    if not rest.startswith("crs:"):
        raise ConfigError(source, "--firewall", spec, FLAG_EXPECTED)
    rest = rest[len("crs:"):]
    level = 1
    head, sep, tail = rest.rpartition(":pl=")
    if sep:
        if tail not in ("1", "2", "3", "4"):
            raise ConfigError(source, "--firewall", spec,
                              "expected pl=1, 2, 3 or 4 (the paranoia level)")
        rest, level = head, int(tail)
    if rest != "auto":
        rest = os.path.abspath(rest) if rest else ""
    if not rest:
        raise ConfigError(source, "--firewall", spec, FLAG_EXPECTED)
    return FirewallSettings(mode=mode, crs=rest, paranoia_level=level)


def apply_firewall_flag(settings: FirewallSettings, flag: Optional[str]) -> FirewallSettings:
    """The ``[firewall]`` with ``--firewall`` applied: its mode, CRS and paranoia level replace
    the file's; the file's other keys (exclusions, modes, Python rules) stay."""
    if not flag:
        return settings
    chosen = parse_firewall_flag(flag)
    from dataclasses import replace

    if chosen.mode == "off":
        return replace(settings, mode="off")
    return replace(settings, mode=chosen.mode, crs=chosen.crs,
                   paranoia_level=chosen.paranoia_level)

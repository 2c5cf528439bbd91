"""[firewall] parsing, the --firewall flag, CRS discovery and the rule sources' order."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, strategies as st

from revproxy.config.errors import ConfigError
from revproxy.config.firewall import (
    FirewallSettings, RuleMode, apply_firewall_flag, parse_firewall_flag,
)
from revproxy.config.load import parse_config
from revproxy.firewall.crs import CRSNotFound, find_crs
from revproxy.firewall.sources import BASE_NAME, SETTINGS_NAME, rule_sources, settings_text
from tests.unit.world import config_dict


def parse(firewall, routes=None):
    data = config_dict(firewall=firewall)
    if routes is not None:
        data["routes"] = routes
    return parse_config(data, "fw.toml").firewall


def error(firewall, routes=None):
    with pytest.raises(ConfigError) as info:
        parse(firewall, routes)
    return str(info.value)


def test_absent_section_is_off():
    """No [firewall]: off (existing configs keep their behaviour)."""
    assert parse_config(config_dict(), "x").firewall == FirewallSettings()
    assert not FirewallSettings().enabled


def test_full_section():
    """Every key parses to its typed value."""
    settings = parse({
        "mode": "detect", "crs": "/opt/crs", "paranoia_level": 2, "inbound_threshold": 10,
        "outbound_threshold": 8, "rules": ["/etc/a.conf"], "exclusions_before": "/etc/b.conf",
        "status": 406, "request_body_limit": "64k", "request_body_limit_action": "partial",
        "response_body_access": True, "log_matched_data_max": 20,
        "modes": [{"ids": [942100, 942200], "mode": "detect"}, {"tags": "attack-xss",
                                                                 "mode": "off"}],
        "python": [{"plugin": "deny_paths", "options": {"prefixes": "/.git"},
                    "order": "after"}],
    })
    assert settings.mode == "detect" and settings.paranoia_level == 2
    assert settings.exclusions_before == ("/etc/b.conf",)
    assert settings.request_body_limit == 65536
    assert settings.modes == (RuleMode("detect", ids=(942100, 942200)),
                              RuleMode("off", tags=("attack-xss",)))
    assert settings.python[0].order == "after"
    assert settings.python[0].options == (("prefixes", "/.git"),)


@pytest.mark.parametrize("firewall, key, expected", [
    ({"mode": "block", "crs": "auto"}, "[firewall] mode", "expected one of: on, detect, off"),
    ({"crs": "relative/dir"}, "[firewall] crs", "absolute path"),
    ({"crs": "auto", "paranoia_level": 5}, "[firewall] paranoia_level", "from 1 to 4"),
    ({"crs": "auto", "rules": ["x.conf"]}, "[firewall] rules #1", "absolute path"),
    ({"crs": "auto", "status": 200}, "[firewall] status", "400 to 599"),
    ({"crs": "auto", "colour": 1}, "[firewall] colour", "unknown key"),
    ({"crs": "auto", "modes": [{"ids": [1], "mode": "maybe"}]}, "[[firewall.modes]] #1 mode",
     "expected one of"),
    ({"crs": "auto", "modes": [{"mode": "off"}]}, "[[firewall.modes]] #1 ids", "tags"),
    ({"crs": "auto", "modes": [{"ids": ["x"], "mode": "off"}]}, "[[firewall.modes]] #1 ids #1",
     "rule id"),
    ({"crs": "auto", "python": [{"order": "before"}]}, "[[firewall.python]] #1 plugin",
     "missing"),
    ({"crs": "auto", "routes": {"nope": "off"}}, "[firewall] routes.nope", "name of a route"),
    ({"mode": "on"}, "[firewall] mode", "no rules are configured"),
])
def test_bad_values_name_file_key_and_expectation(firewall, key, expected):
    """Each bad value: the file, the key (with its table) and what was expected."""
    message = error(firewall)
    assert message.startswith("fw.toml: " + key), message
    assert expected in message


def test_route_modes_name_existing_routes():
    settings = parse({"crs": "auto", "routes": {"api": "detect"}},
                     routes=[{"name": "api", "pool": "main"}])
    assert settings.routes == (("api", "detect"),)


@pytest.mark.parametrize("flag, mode, crs, level", [
    ("crs:/opt/crs", "on", "/opt/crs", 1),
    ("crs:/opt/crs:pl=2", "on", "/opt/crs", 2),
    ("detect:crs:/opt/crs:pl=4", "detect", "/opt/crs", 4),
    ("crs:auto", "on", "auto", 1),
    ("off", "off", "", 1),
])
def test_firewall_flag(flag, mode, crs, level):
    """--firewall forms: crs:DIR[:pl=N], detect:..., crs:auto, off."""
    settings = parse_firewall_flag(flag)
    assert (settings.mode, settings.crs, settings.paranoia_level) == (mode, crs, level)


@pytest.mark.parametrize("flag", ["on", "crs:", "crs:/x:pl=5", "detect:/x", "detect:off"])
def test_bad_firewall_flag(flag):
    with pytest.raises(ConfigError) as info:
        parse_firewall_flag(flag)
    assert "--firewall" in str(info.value)


def test_flag_keeps_the_files_other_keys():
    """--firewall replaces mode, crs and paranoia level; exclusions and modes stay."""
    base = FirewallSettings(mode="off", crs="", rules=("/r.conf",), status=406)
    applied = apply_firewall_flag(base, "crs:/opt/crs:pl=3")
    assert (applied.mode, applied.crs, applied.paranoia_level) == ("on", "/opt/crs", 3)
    assert applied.rules == ("/r.conf",) and applied.status == 406
    assert apply_firewall_flag(applied, "off").mode == "off"


@given(st.text(max_size=40))
def test_flag_parser_raises_only_config_errors(flag):
    """Any flag text either parses or is a ConfigError (never another exception)."""
    try:
        parse_firewall_flag(flag)
    except ConfigError:
        pass


# -- CRS discovery -----------------------------------------------------------------------------
def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_release_directory(tmp_path):
    """A release: crs-setup.conf.example when there is no crs-setup.conf; rules sorted."""
    root = str(tmp_path / "crs")
    write(root + "/crs-setup.conf.example", "setvar:tx.crs_setup_version=4280")
    write(root + "/rules/REQUEST-949-X.conf")
    write(root + "/rules/REQUEST-901-X.conf")
    write(root + "/rules/README.md")
    layout = find_crs(root)
    assert layout.setup.endswith("crs-setup.conf.example") and layout.version == 4
    assert [os.path.basename(p) for p in layout.rules] == ["REQUEST-901-X.conf",
                                                           "REQUEST-949-X.conf"]
    write(root + "/crs-setup.conf", "setvar:tx.crs_setup_version=334")
    layout = find_crs(root)
    assert layout.setup.endswith("crs-setup.conf") and layout.version == 3


def test_debian_layout_and_auto(tmp_path):
    """Debian: rules in /usr/share, setup and exclusions in /etc; "auto" finds it, and
    is None (not an error) when it is absent."""
    share, etc = str(tmp_path / "share"), str(tmp_path / "etc")
    assert find_crs("auto", share, etc) is None
    write(share + "/rules/REQUEST-901-X.conf")
    write(etc + "/crs-setup.conf", "setvar:tx.crs_setup_version=334")
    write(etc + "/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf")
    layout = find_crs("auto", share, etc)
    assert layout.version == 3 and layout.setup == etc + "/crs-setup.conf"
    assert layout.before == (etc + "/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",)
    assert layout.after == ()
    assert find_crs(share, share, etc) == layout  # the directory named explicitly


def test_named_directory_must_hold_a_crs(tmp_path):
    """A named directory that is missing or holds no CRS is an error (never silently off)."""
    with pytest.raises(CRSNotFound, match="no such directory"):
        find_crs(str(tmp_path / "nope"))
    os.makedirs(str(tmp_path / "empty"))
    with pytest.raises(CRSNotFound, match="no rules/"):
        find_crs(str(tmp_path / "empty"))


def test_sources_in_modsecurity_order(tmp_path):
    """base, setup, [firewall] settings, exclusions before, rules, exclusions after, rules."""
    root = str(tmp_path / "crs")
    write(root + "/crs-setup.conf.example", "# setup")
    write(root + "/rules/REQUEST-901-X.conf", "# 901")
    for name in ("before.conf", "after.conf", "local.conf"):
        write(str(tmp_path / name), "# " + name)
    settings = FirewallSettings(mode="on", crs=root, paranoia_level=2,
                                exclusions_before=(str(tmp_path / "before.conf"),),
                                exclusions_after=(str(tmp_path / "after.conf"),),
                                rules=(str(tmp_path / "local.conf"),))
    names = [os.path.basename(name) for name, _ in rule_sources(settings, find_crs(root), "x")]
    assert names == [BASE_NAME, "crs-setup.conf.example", SETTINGS_NAME, "before.conf",
                     "REQUEST-901-X.conf", "after.conf", "local.conf"]


def test_settings_text_per_crs_version():
    """CRS 4: tx.blocking_paranoia_level; CRS 3: tx.paranoia_level; both thresholds."""
    settings = FirewallSettings(mode="on", paranoia_level=3, inbound_threshold=7)
    assert "setvar:tx.blocking_paranoia_level=3" in settings_text(settings, 4)
    text3 = settings_text(settings, 3)
    assert "setvar:tx.paranoia_level=3" in text3 and "blocking" not in text3
    assert "setvar:tx.inbound_anomaly_score_threshold=7" in text3


def test_unreadable_rule_file_names_the_file(tmp_path):
    settings = FirewallSettings(mode="on", rules=(str(tmp_path / "missing.conf"),))
    with pytest.raises(ConfigError) as info:
        rule_sources(settings, None, "fw.toml")
    assert "fw.toml: [firewall] rules" in str(info.value)
    assert "missing.conf" in str(info.value)

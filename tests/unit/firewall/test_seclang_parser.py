"""The SecLang parser and loader: syntax, quoting, continuations, and errors with file:line."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.api import SecLangError
from revproxy.firewall.seclang.parser import (
    parse, split_actions, split_operator, split_variables,
)
from tests.unit.firewall.seclang_helpers import waf


def test_continuation_lines_join_into_one_directive_with_the_first_line_number():
    """A backslash at the end of a line continues the directive on the next line."""
    ds = parse('# c\n\nSecRule ARGS "@rx a" \\\n    "id:1,\\\n    pass"\nSecMarker X\n', "f")
    assert [(d.name, d.line) for d in ds] == [("SecRule", 3), ("SecMarker", 6)]
    assert ds[0].args == ("ARGS", "@rx a", "id:1,    pass")


def test_double_quotes_unescape_only_escaped_quotes():
    """Inside "...", \\" is a quote and every other backslash stays (regexes are intact)."""
    (d,) = parse(r'SecRule ARGS "@rx \"a\\d\w" "id:1"', "f")
    assert d.args[1] == r'@rx "a\\d\w'


def test_comment_line_ending_in_backslash_does_not_swallow_the_next_line():
    """A comment never continues (Apache)."""
    ds = parse('# comment \\\nSecMarker A\n', "f")
    assert [d.name for d in ds] == ["SecMarker"]


def test_unterminated_quote_is_an_error_with_its_line():
    with pytest.raises(SecLangError) as e:
        parse('\nSecRule ARGS "@rx a\n', "x.conf")
    assert (e.value.file, e.value.line) == ("x.conf", 2)


def test_actions_with_quoted_values_holding_commas_and_colons():
    """Single-quoted values keep commas, colons and escaped quotes."""
    acts = split_actions("id:1, msg:'a, b: c', t:none,tag:'it\\'s',nolog,"
                         "ctl:ruleRemoveTargetById=1;ARGS:x", "f", 1)
    assert acts == [("id", "1"), ("msg", "a, b: c"), ("t", "none"), ("tag", "it's"),
                    ("nolog", None), ("ctl", "ruleRemoveTargetById=1;ARGS:x")]


def test_variables_with_exclusions_counts_and_regex_keys_holding_pipes():
    specs = split_variables("ARGS|!ARGS:z|&TX:x|REQUEST_COOKIES:/^a|b$/|XML:/*", "f", 1)
    assert [(s.name, s.key, s.regex, s.exclude, s.count) for s in specs] == [
        ("ARGS", None, False, False, False), ("ARGS", "z", False, True, False),
        ("TX", "x", False, False, True), ("REQUEST_COOKIES", "^a|b$", True, False, False),
        ("XML", "/*", False, False, False)]


def test_operator_defaults_to_rx_and_negation_is_split_off():
    assert split_operator("!@within a b") == (True, "within", "a b")
    assert split_operator("^abc$") == (False, "rx", "^abc$")
    assert split_operator("!^x") == (True, "rx", "^x")
    assert split_operator("@unconditionalMatch") == (False, "unconditionalMatch", "")


@pytest.mark.parametrize("text, needle", [
    ('SecFoo On', "unsupported directive SecFoo"),
    ('SecRule NOPE "@rx a" "id:1"', "unknown variable NOPE"),
    ('SecRule ARGS "@nope a" "id:1"', "operator @nope"),
    ('SecRule ARGS "@rx a" "id:1,frobnicate"', "unknown action frobnicate"),
    ('SecRule ARGS "@rx a" "id:1,t:rot13"', "unknown transformation rot13"),
    ('SecRule ARGS "@rx a" "id:1,ctl:fooBar=1"', "unsupported ctl option fooBar"),
    ('SecRule ARGS "@rx a" "phase:2"', "rule has no id"),
    ('SecRule ARGS "@rx a" "id:1,phase:9"', "bad phase"),
    ('SecRule ARGS "@rx a" "id:1,exec:/bin/sh"', "unsupported action exec"),
    ('SecAction "id:1"\nSecAction "id:1"', "duplicate rule id 1"),
    ('SecRule ARGS "a" "id:1,chain"', "chain action with no rule after it"),
    ('SecRuleEngine Maybe', "SecRuleEngine expects"),
    ('SecDefaultAction "log,pass"', "needs a phase"),
    ('Include does-not-exist-*.conf', "matched no file"),
])
def test_each_kind_of_bad_name_fails_with_file_line_and_the_name(text, needle):
    """Unknown directives, variables, operators, actions, transformations -> SecLangError."""
    with pytest.raises(SecLangError) as e:
        waf("\n" + text)
    assert needle in str(e.value)
    line = 2 + text.count("\n")  # the duplicate is reported on the second SecAction
    assert e.value.file == "rules.conf" and e.value.line == line
    assert str(e.value).startswith("rules.conf:%d: " % line)


def test_include_is_relative_to_the_including_file_and_globs(tmp_path):
    """Include reads files next to the including file; globs load in sorted order."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.conf").write_text('SecAction "id:2,phase:1,pass,setvar:tx.b=1"\n')
    (tmp_path / "sub" / "a.conf").write_text('SecAction "id:1,phase:1,pass,setvar:tx.a=1"\n')
    main = tmp_path / "main.conf"
    main.write_text("Include sub/*.conf\n")
    from revproxy.firewall.seclang.engine import load_waf
    w = load_waf([(str(main), main.read_text())])
    assert [r.id for r in w.phases[1]] == [1, 2]


def test_include_error_points_at_the_included_file(tmp_path):
    (tmp_path / "bad.conf").write_text("\n\nSecBogus 1\n")
    main = tmp_path / "main.conf"
    from revproxy.firewall.seclang.engine import load_waf
    with pytest.raises(SecLangError) as e:
        load_waf([(str(main), "Include bad.conf\n")])
    assert e.value.file == os.path.join(str(tmp_path), "bad.conf") and e.value.line == 3


def test_recorded_directives_are_accepted_without_effect():
    w = waf("SecAuditEngine RelevantOnly\nSecDebugLogLevel 0\nSecUnicodeMapFile u.map 20127\n"
            "SecComponentSignature \"x/1\"\nSecRequestBodyAccess On\n"
            "SecRequestBodyLimit 100\nSecResponseBodyMimeType text/plain text/xml\n")
    s = w.settings
    assert s.request_body_access and s.request_body_limit == 100
    assert s.response_mime_types == [b"text/plain", b"text/xml"]
    assert s.component_signatures == ["x/1"]
    assert [n for n, _ in s.recorded] == ["SecAuditEngine", "SecDebugLogLevel",
                                         "SecUnicodeMapFile"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('SecRule ARGS"@rx:,\'\\|!&/\n#id:1tx.=%{}')),
               max_size=80))
def test_loading_arbitrary_text_raises_nothing_but_seclang_error(text):
    """The parser and compiler never raise anything but SecLangError."""
    try:
        waf(text)
    except SecLangError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parsing_arbitrary_unicode_raises_nothing_but_seclang_error(text):
    try:
        for d in parse(text, "f"):
            split_actions(" ".join(d.args), "f", d.line)
            split_variables(" ".join(d.args), "f", d.line)
    except SecLangError:
        pass

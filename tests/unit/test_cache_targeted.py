"""Targeted cache control (RFC 9213): the dictionary parser and the policy view."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.cache.directives import parse_cache_control
from revproxy.cache.targeted import TargetedPolicy, directives, parse_dictionary

POLICY = TargetedPolicy(("revproxy-cache-control", "cdn-cache-control"),
                        ("revproxy-cache-control",))


def test_dictionary_members_and_values():
    assert parse_dictionary("max-age=60, private") == {"max-age": 60, "private": True}
    assert parse_dictionary('no-cache=("set-cookie" "x-a");p=1, a=?0, b="x\\"y", c=tok/1') == {
        "no-cache": ["set-cookie", "x-a"], "a": False, "b": 'x"y', "c": "tok/1"}
    assert parse_dictionary("a=1.5, b=-3, c=:aGk=:") == {"a": 1.5, "b": -3, "c": b"aGk="}
    assert parse_dictionary("a=1, a=2") == {"a": 2}  # the last one wins (RFC 8941 §3.2)
    assert parse_dictionary("") == {}


def test_invalid_dictionaries_are_refused_whole():
    for text in ("Max-Age=60", "max-age=60,", "max-age=", "a=\"open", "a=(1 2", "a b",
                 "max-age=60;", "a=?2", "a=1.2345", "a=\x01", ",a"):
        assert parse_dictionary(text) is None, text


def test_directives_rendered_for_cache_control():
    assert directives([b"max-age=60, private"]) == b"max-age=60, private"
    assert directives([b"max-age=60", b"no-store=?0"]) == b"max-age=60"
    cc = parse_cache_control([directives([b'no-cache=("set-cookie" "x-a")'])])
    assert cc["no-cache"] == "set-cookie, x-a"
    assert directives([b"private=?0"]) is None  # nothing left: empty
    assert directives([b"Max-Age=1"]) is None  # invalid
    assert directives([b"max-age=60, \xff"]) is None


def test_policy_view_prefers_our_field_then_cdn_then_cache_control():
    headers = [(b"cache-control", b"no-store"), (b"expires", b"0"),
               (b"cdn-cache-control", b"max-age=60")]
    view = POLICY.policy_headers(headers)
    assert (b"cache-control", b"max-age=60") in view
    assert (b"expires", b"0") not in view and (b"cache-control", b"no-store") not in view
    ours = headers + [(b"revproxy-cache-control", b"max-age=5")]
    assert (b"cache-control", b"max-age=5") in POLICY.policy_headers(ours)
    bad_ours = headers + [(b"revproxy-cache-control", b"MAX-AGE=5")]  # invalid: next field
    assert (b"cache-control", b"max-age=60") in POLICY.policy_headers(bad_ours)


def test_policy_view_is_the_same_object_without_a_valid_targeted_field():
    plain = [(b"cache-control", b"max-age=1")]
    assert POLICY.policy_headers(plain) is plain
    invalid = plain + [(b"cdn-cache-control", b"max-age=\"x")]
    assert POLICY.policy_headers(invalid) is invalid
    assert TargetedPolicy().policy_headers(invalid) is invalid


_keys = st.sampled_from(["max-age", "s-maxage", "private", "no-cache", "no-store", "public",
                         "stale-if-error", "must-revalidate", "x-ext"])
_values = st.one_of(st.just(True), st.just(False), st.integers(0, 10 ** 9),
                    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12))


def _render(value):
    if value is True:
        return ""
    if value is False:
        return "=?0"
    if isinstance(value, int):
        return "=%d" % value
    if value and value[0].isalpha() and all(c.isalnum() or c == "-" for c in value):
        return "=" + value
    return '="%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


@settings(max_examples=300)
@given(st.dictionaries(_keys, _values, max_size=6), st.sampled_from([",", ", ", " ,\t"]))
def test_rendered_dictionaries_round_trip(members, sep):
    text = sep.join(key + _render(value) for key, value in members.items())
    assert parse_dictionary(text) == members


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_junk_never_raises(junk):
    directives([junk])
    headers = [(b"cdn-cache-control", junk), (b"cache-control", b"max-age=1")]
    view = POLICY.policy_headers(headers)
    assert view is headers or (b"cache-control", b"max-age=1") not in view
